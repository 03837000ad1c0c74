// Which device to run on, as people name it: "host", "host:CAPACITY", "sim:PROFILE", "cuda",
// "cuda:N". make_backend (backends.hpp) turns one into a backend.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "memento/backend.hpp"

namespace memento {

/// A device by name: its backend kind and that kind's argument.
struct DeviceSpec {
  BackendKind kind = BackendKind::host;
  std::string profile;            ///< sim profile name
  int index = 0;                  ///< cuda device ordinal
  std::size_t host_capacity = 0;  ///< host backend capacity; 0 = default
  /// The text parse_device reads back as this spec ("host:16GiB", "sim:h100-sxm", "cuda:0").
  [[nodiscard]] std::string to_string() const;
  friend bool operator==(const DeviceSpec&, const DeviceSpec&) = default;
};

/// Parses "host", "host:CAPACITY", "sim:PROFILE", "cuda" or "cuda:N". ConfigError naming
/// `what` (a flag or variable), the value and the accepted forms otherwise.
[[nodiscard]] DeviceSpec parse_device(std::string_view text, std::string_view what);

}  // namespace memento
