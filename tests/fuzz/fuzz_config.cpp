// Fuzz target: the configuration from the environment (memento::parse_config,
// include/memento/config.hpp). The input is the environment, one NAME=VALUE per line (the
// first '=' separates them; a later line for the same name wins), e.g.
//   MEMENTO_CONF=budget:8GiB,device:sim:h100-sxm
//   MEMENTO_BUDGET=8GiB
// A configuration parses or is a ConfigError naming the variable or MEMENTO_CONF; a parsed
// one says where each value came from, and its device reads back from its own text.
// parse_config only checks a trace file's directory; nothing is written.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_common.hpp"
#include "memento/config.hpp"
#include "memento/device_spec.hpp"
#include "memento/error.hpp"
#include "memento/policy.hpp"

namespace {

using memento::Config;
using memento::ConfigError;

std::map<std::string, std::string, std::less<>> environment(std::string_view input) {
  std::map<std::string, std::string, std::less<>> env;
  while (!input.empty()) {
    const std::size_t newline = input.find('\n');
    const std::string_view line = input.substr(0, newline);
    input = newline == std::string_view::npos ? std::string_view{} : input.substr(newline + 1);
    const std::size_t eq = line.find('=');
    if (eq == std::string_view::npos) continue;
    env[std::string(line.substr(0, eq))] = std::string(line.substr(eq + 1));
  }
  return env;
}

void check(const Config& config) {
  if (config.budget) {
    MEMENTO_FUZZ_CHECK(
        config.budget->source == "MEMENTO_BUDGET" || config.budget->source == "MEMENTO_CONF budget",
        "the budget's source: " + config.budget->source);
    (void)config.budget->describe();
  }
  MEMENTO_FUZZ_CHECK(config.host_budget.has_value() == !config.sources.host_budget.empty(),
                     "host_budget has a source");
  MEMENTO_FUZZ_CHECK(!config.host_budget || *config.host_budget > 0, "host_budget is positive");
  MEMENTO_FUZZ_CHECK(config.device.has_value() == !config.sources.device.empty(),
                     "device has a source");
  MEMENTO_FUZZ_CHECK(config.policy.has_value() == !config.sources.policy.empty(),
                     "policy has a source");
  MEMENTO_FUZZ_CHECK(config.trace_file.has_value() == !config.sources.trace.empty(),
                     "trace has a source");
  if (config.device) {
    const std::string text = config.device->to_string();
    const memento::DeviceSpec again = memento::parse_device(text, "to_string");
    MEMENTO_FUZZ_CHECK(again == *config.device, text + " reads back as another device");
  }
  if (config.policy) {
    const std::vector<std::string> names = memento::policy_names();
    MEMENTO_FUZZ_CHECK(std::find(names.begin(), names.end(), *config.policy) != names.end(),
                       "policy " + *config.policy + " is one of policy_names()");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto env = environment(std::string_view(reinterpret_cast<const char*>(data), size));
  const memento::EnvLookup lookup = [&env](const char* name) -> std::optional<std::string> {
    const auto it = env.find(std::string_view(name));
    if (it == env.end()) return std::nullopt;
    return it->second;
  };
  try {
    check(memento::parse_config(lookup));
  } catch (const ConfigError& e) {
    const std::string_view message = e.what();
    MEMENTO_FUZZ_CHECK(message.starts_with("MEMENTO_"),
                       "the message names the variable: " + std::string(message));
    MEMENTO_FUZZ_CHECK(message.find("accepted") != std::string_view::npos ||
                           message.find("conflicts with") != std::string_view::npos,
                       "the message says what is accepted: " + std::string(message));
  }
  return 0;
}
