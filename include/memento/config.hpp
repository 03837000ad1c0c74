// Configuration from the environment: MEMENTO_BUDGET, MEMENTO_HOST_BUDGET, MEMENTO_DEVICE,
// MEMENTO_POLICY, MEMENTO_TRACE, MEMENTO_CONF. Every malformed value is a ConfigError naming the
// variable, the value and what is accepted. Read at the entry points only (the CLI and the C
// API), which pass what they read down: nothing below them reads the environment.
#pragma once

#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "memento/budget.hpp"
#include "memento/bytes.hpp"
#include "memento/device_spec.hpp"

namespace memento {

/// Where each value of a Config came from: "MEMENTO_DEVICE", "MEMENTO_CONF device", ...
/// (empty when unset), for errors about a value found wrong later. A budget keeps its own.
struct ConfigSources {
  std::string host_budget;
  std::string device;
  std::string policy;
  std::string trace;
};

/// Everything the environment can set.
struct Config {
  std::optional<BudgetSpec> budget;  ///< a bare "60%" is of device memory
  std::optional<std::size_t> host_budget;
  std::optional<DeviceSpec> device;
  std::optional<std::string> policy;      ///< MEMENTO_POLICY: an eviction policy name
  std::optional<std::string> trace_file;  ///< MEMENTO_TRACE: where to write a Chrome trace
  ConfigSources sources;
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
