// MEMENTO_BUDGET, MEMENTO_HOST_BUDGET, MEMENTO_DEVICE, MEMENTO_POLICY, MEMENTO_TRACE and
// MEMENTO_CONF. A bad value is a ConfigError naming the variable, the value and what is
// accepted: a typo in a budget must never silently fall back to a default. Only the entry
// points (the CLI and the C API) call this; the library below them takes what they read.
#include "memento/config.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "common/text.hpp"
#include "memento/error.hpp"
#include "memento/policy.hpp"

namespace memento {
namespace {

using text::setting;
using text::trim;

constexpr std::string_view kConfHint =
    "comma-separated key:value pairs with keys budget, host_budget, device, policy, trace, "
    "e.g. budget:8GiB,device:sim:h100-sxm,trace:/tmp/run.json (a value cannot contain a "
    "comma)";
constexpr std::string_view kTraceForms =
    "the path of the JSON file to write, in an existing directory, e.g. run.json or "
    "/tmp/run.json (in MEMENTO_CONF, trace:PATH with no comma in PATH)";

// One MEMENTO_CONF item, kept with its text for error messages.
struct ConfItem {
  std::string value;
  std::string what;  // "MEMENTO_CONF budget"
};

std::map<std::string, ConfItem, std::less<>> parse_conf(std::string_view conf) {
  const auto fail = [&](const std::string& reason) {
    MEMENTO_FAIL(ConfigError, fmt::format("{} is not valid: {}; accepted: {}",
                                          setting("MEMENTO_CONF", conf), reason, kConfHint));
  };
  if (trim(conf).empty()) fail("it is empty");
  std::map<std::string, ConfItem, std::less<>> items;
  std::size_t pos = 0;
  for (int n = 1;; ++n) {
    const std::size_t comma = conf.find(',', pos);
    const std::string_view item = trim(conf.substr(pos, comma - pos));
    // An empty item is most likely a value lost to shell quoting; refuse rather than guess.
    if (item.empty()) fail(fmt::format("item {} is empty", n));
    // Split at the first ':' only: device values contain one ("device:sim:h100-sxm"), and a
    // trace path may ("trace:/tmp/a:b.json"). A value ends at the next ',' (none in paths).
    const std::size_t colon = item.find(':');
    if (colon == std::string_view::npos)
      fail(fmt::format("item \"{}\" is not key:value", text::printable(item)));
    const std::string_view key = trim(item.substr(0, colon));
    const std::string_view value = trim(item.substr(colon + 1));
    if (key != "budget" && key != "host_budget" && key != "device" && key != "policy" &&
        key != "trace")
      fail(fmt::format("unknown key \"{}\"", text::printable(key)));
    if (items.contains(key)) fail(fmt::format("key \"{}\" is given twice", text::printable(key)));
    items.emplace(std::string(key),
                  ConfItem{std::string(value), fmt::format("MEMENTO_CONF {}", key)});
    if (comma == std::string_view::npos) break;
    pos = comma + 1;
  }
  return items;
}

// The value for one key from its own variable and/or MEMENTO_CONF; both must agree.
// `source` is set to where the value came from (the variable wins when both agree).
template <typename T, typename Parse, typename Same>
std::optional<T> merge(const std::optional<std::string>& var, const char* var_name,
                       const std::map<std::string, ConfItem, std::less<>>& conf,
                       std::string_view key, Parse parse, Same same, std::string& source) {
  std::optional<T> from_var;
  if (var) {
    from_var = parse(*var, var_name);
    source = var_name;
  }
  const auto it = conf.find(key);
  if (it == conf.end()) return from_var;
  T from_conf = parse(it->second.value, it->second.what);
  if (!from_var) {
    source = it->second.what;
    return from_conf;
  }
  MEMENTO_EXPECTS(same(*from_var, from_conf),
                  fmt::format("{} conflicts with {}; set it in one place or make them agree",
                              setting(var_name, *var), setting(it->second.what, it->second.value)),
                  ConfigError);
  return from_var;
}

}  // namespace

std::string parse_policy(std::string_view text, std::string_view what) {
  const std::string_view name = trim(text);
  std::vector<std::string> names = policy_names();
  if (std::find(names.begin(), names.end(), name) != names.end()) return std::string(name);
  MEMENTO_FAIL(ConfigError, fmt::format("{} is not an eviction policy; accepted: {}",
                                        setting(what, text), fmt::join(names, ", ")));
}

std::string parse_trace_file(std::string_view text, std::string_view what) {
  namespace fs = std::filesystem;
  const auto fail = [&](std::string_view reason) {
    MEMENTO_FAIL(ConfigError, fmt::format("{} is not a trace file: {}; accepted: {}",
                                          setting(what, text), reason, kTraceForms));
  };
  const std::string_view s = trim(text);
  if (s.empty()) fail("it is empty");
  const fs::path path{std::string(s)};
  std::error_code ec;
  if (!path.has_filename() || fs::is_directory(path, ec)) fail("it names a directory");
  // The file is written at the end of the run: a missing directory must fail now, not then.
  const fs::path parent = path.has_parent_path() ? path.parent_path() : fs::path(".");
  const fs::file_status status = fs::status(parent, ec);
  if (status.type() == fs::file_type::not_found)
    fail(fmt::format("directory \"{}\" does not exist", text::printable(parent.string())));
  if (ec)
    fail(fmt::format("cannot check directory \"{}\": {}", text::printable(parent.string()),
                     ec.message()));
  if (!fs::is_directory(status))
    fail(fmt::format("\"{}\" is not a directory", text::printable(parent.string())));
  return std::string(s);
}

Config parse_config(const EnvLookup& lookup) {
  const std::optional<std::string> budget = lookup("MEMENTO_BUDGET");
  const std::optional<std::string> host_budget = lookup("MEMENTO_HOST_BUDGET");
  const std::optional<std::string> device = lookup("MEMENTO_DEVICE");
  const std::optional<std::string> policy = lookup("MEMENTO_POLICY");
  const std::optional<std::string> trace = lookup("MEMENTO_TRACE");
  const std::optional<std::string> conf_text = lookup("MEMENTO_CONF");

  // A set-but-empty variable is an error, not "unset": each parser rejects empty text.
  std::map<std::string, ConfItem, std::less<>> conf;
  if (conf_text) conf = parse_conf(*conf_text);

  Config config;
  std::string budget_source;  // BudgetSpec keeps its own
  config.budget = merge<BudgetSpec>(
      budget, "MEMENTO_BUDGET", conf, "budget",
      [](std::string_view text, std::string_view what) { return parse_budget(text, what); },
      [](const BudgetSpec& a, const BudgetSpec& b) { return a.same_as(b); }, budget_source);
  config.host_budget =
      merge<std::size_t>(host_budget, "MEMENTO_HOST_BUDGET", conf, "host_budget", parse_bytes,
                         std::equal_to<std::size_t>{}, config.sources.host_budget);
  config.device = merge<DeviceSpec>(device, "MEMENTO_DEVICE", conf, "device", parse_device,
                                    std::equal_to<DeviceSpec>{}, config.sources.device);
  config.policy = merge<std::string>(policy, "MEMENTO_POLICY", conf, "policy", parse_policy,
                                     std::equal_to<std::string>{}, config.sources.policy);
  // "run.json" and "./run.json" agree: the same file.
  config.trace_file = merge<std::string>(
      trace, "MEMENTO_TRACE", conf, "trace", parse_trace_file,
      [](const std::string& a, const std::string& b) {
        return std::filesystem::path(a).lexically_normal() ==
               std::filesystem::path(b).lexically_normal();
      },
      config.sources.trace);
  return config;
}

Config config_from_env() {
  return parse_config([](const char* name) -> std::optional<std::string> {
    const char* value = std::getenv(name);
    if (value == nullptr) return std::nullopt;
    return std::string(value);
  });
}

}  // namespace memento
