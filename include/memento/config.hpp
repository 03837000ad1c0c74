// Configuration from the environment: MEMENTO_BUDGET, MEMENTO_HOST_BUDGET, MEMENTO_DEVICE,
// MEMENTO_POLICY, MEMENTO_TRACE, MEMENTO_CONF. Every malformed value is a ConfigError naming the
// variable, the value and what is accepted.
#pragma once

#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "memento/backend.hpp"

namespace memento {

/// Parses a byte count: raw digits ("1048576"), or a number (decimals allowed) followed by a
/// unit, case-insensitive: B; K, KiB, M, MiB, G, GiB, T, TiB (powers of 1024); KB, MB, GB, TB
/// (powers of 1000). Zero, negative, malformed and overflowing values throw ConfigError whose
/// message starts with `what` (e.g. "MEMENTO_HOST_BUDGET").
[[nodiscard]] std::size_t parse_bytes(std::string_view text, std::string_view what);

/// "1.50 GiB"-style formatting with binary units.
[[nodiscard]] std::string format_bytes(std::size_t bytes);

/// A device-memory budget: absolute bytes, or a percentage of device capacity.
struct BudgetSpec {
  std::size_t bytes = 0;  ///< absolute budget, when percent == 0
  double percent = 0;     ///< in (0, 100] when given as "60%"
  std::string text;       ///< as written, for error messages
  std::string source;     ///< where it came from, e.g. "MEMENTO_BUDGET"

  /// The budget in bytes on a device of `capacity` bytes. ConfigError when it exceeds it.
  [[nodiscard]] std::size_t resolve(std::size_t capacity) const;
};

/// Parses "8GiB", "512MB", "1.5G", "1073741824" or "60%".
[[nodiscard]] BudgetSpec parse_budget(std::string_view text, std::string_view what);

/// Which device to run on: "host" or "host:CAPACITY", "sim:PROFILE", "cuda" or "cuda:N".
struct DeviceSpec {
  BackendKind kind = BackendKind::host;
  std::string profile;            ///< sim profile name
  int index = 0;                  ///< cuda device ordinal
  std::size_t host_capacity = 0;  ///< host backend capacity; 0 = default
  [[nodiscard]] std::string to_string() const;
};

[[nodiscard]] DeviceSpec parse_device(std::string_view text, std::string_view what);

/// Everything the environment can set.
struct Config {
  std::optional<BudgetSpec> budget;
  std::optional<std::size_t> host_budget;
  std::optional<DeviceSpec> device;
  std::optional<std::string> policy;      ///< MEMENTO_POLICY: an eviction policy name
  std::optional<std::string> trace_file;  ///< MEMENTO_TRACE: where to write a Chrome trace
};

/// Checks an eviction policy name ("lru", "dtr", ...); ConfigError listing them otherwise.
[[nodiscard]] std::string parse_policy(std::string_view text, std::string_view what);

/// Checks the path of a Chrome trace file: not empty (surrounding blanks trimmed), not a
/// directory, and in a directory that exists (the file itself is written later). Returns the
/// path as given, trimmed. ConfigError otherwise.
[[nodiscard]] std::string parse_trace_file(std::string_view text, std::string_view what);

/// Reads a variable: returns std::nullopt when unset.
using EnvLookup = std::function<std::optional<std::string>(const char* name)>;

/// Builds the configuration from the variables `lookup` returns. MEMENTO_CONF holds
/// comma-separated key:value pairs with keys budget, host_budget, device, policy, trace; a key
/// also set by its own variable must agree with it. Unknown keys are errors listing the valid
/// ones. A value ends at the next comma, so a trace path in MEMENTO_CONF cannot contain one
/// (MEMENTO_TRACE can); it may contain colons: only the first one separates key and value.
[[nodiscard]] Config parse_config(const EnvLookup& lookup);

/// parse_config over the process environment.
[[nodiscard]] Config config_from_env();

}  // namespace memento
