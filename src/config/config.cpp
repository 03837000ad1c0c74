// MEMENTO_BUDGET, MEMENTO_HOST_BUDGET, MEMENTO_DEVICE, MEMENTO_POLICY, MEMENTO_TRACE and
// MEMENTO_CONF. A bad value is a ConfigError naming the variable, the value and what is
// accepted: a typo in a budget must never silently fall back to a default.
#include "memento/config.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>

#include "config/text.hpp"
#include "memento/device_profile.hpp"
#include "memento/error.hpp"
#include "memento/policy.hpp"

namespace memento {
namespace {

using config_text::is_digit;
using config_text::is_space;
using config_text::setting;
using config_text::trim;

constexpr std::string_view kPercentHint =
    "a percentage of device memory in (0, 100], e.g. 60% or 12.5%";
constexpr std::string_view kDeviceForms =
    "host, host:CAPACITY (e.g. host:16GiB), sim:PROFILE, cuda (device 0) or cuda:N "
    "(N a device index >= 0)";
constexpr std::string_view kConfHint =
    "comma-separated key:value pairs with keys budget, host_budget, device, policy, trace, "
    "e.g. budget:8GiB,device:sim:h100-sxm,trace:/tmp/run.json (a value cannot contain a "
    "comma)";
constexpr std::string_view kTraceForms =
    "the path of the JSON file to write, in an existing directory, e.g. run.json or "
    "/tmp/run.json (in MEMENTO_CONF, trace:PATH with no comma in PATH)";

std::string profile_names() {
  std::string names;
  for (const DeviceProfile& p : device_profiles()) {
    if (!names.empty()) names += ", ";
    names += p.name;
  }
  return names;
}

// Adds context to a ConfigError raised by a nested parser. The original location is kept:
// it points at the check that failed.
[[noreturn]] void rethrow_with(const ConfigError& e, std::string_view suffix) {
  throw ConfigError(fmt::format("{}; {}", e.what(), suffix), e.file(), e.line());
}

double parse_percent(std::string_view text, std::string_view what, std::string_view number) {
  const auto fail = [&](std::string_view reason) {
    MEMENTO_FAIL(ConfigError, fmt::format("{} is not a valid budget: {}; accepted: {}",
                                          setting(what, text), reason, kPercentHint));
  };
  if (number.empty()) fail("no number before '%'");
  if (number.front() == '-') fail("a percentage must be in (0, 100]");
  // Plain decimals only (D+ or D+.D+), as for byte sizes: from_chars alone would also take
  // "inf", "1e2" and hex floats.
  const std::size_t dot = number.find('.');
  const bool well_formed =
      is_digit(number.front()) && is_digit(number.back()) &&
      number.find_first_not_of("0123456789.") == std::string_view::npos &&
      (dot == std::string_view::npos || number.find('.', dot + 1) == std::string_view::npos);
  if (!well_formed) fail(fmt::format("malformed number \"{}\"", number));
  double percent = 0;
  const auto [ptr, ec] = std::from_chars(number.data(), number.data() + number.size(), percent);
  if (ec != std::errc{} || ptr != number.data() + number.size())
    fail(fmt::format("malformed number \"{}\"", number));
  if (!(percent > 0 && percent <= 100)) fail("a percentage must be in (0, 100]");
  return percent;
}

// The exact text a capacity round-trips through parse_bytes with: "16GiB" when it is a whole
// number of a binary unit, raw bytes otherwise.
std::string exact_bytes_text(std::size_t bytes) {
  constexpr std::string_view kUnits[] = {"TiB", "GiB", "MiB", "KiB"};
  std::size_t unit = std::size_t{1} << 40;
  for (std::string_view name : kUnits) {
    if (bytes % unit == 0) return fmt::format("{}{}", bytes / unit, name);
    unit >>= 10;
  }
  return std::to_string(bytes);
}

bool same_budget(const BudgetSpec& a, const BudgetSpec& b) {
  return a.bytes == b.bytes && a.percent == b.percent;
}

bool same_device(const DeviceSpec& a, const DeviceSpec& b) {
  return a.kind == b.kind && a.profile == b.profile && a.index == b.index &&
         a.host_capacity == b.host_capacity;
}

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
    if (colon == std::string_view::npos) fail(fmt::format("item \"{}\" is not key:value", item));
    const std::string_view key = trim(item.substr(0, colon));
    const std::string_view value = trim(item.substr(colon + 1));
    if (key != "budget" && key != "host_budget" && key != "device" && key != "policy" &&
        key != "trace")
      fail(fmt::format("unknown key \"{}\"", key));
    if (items.contains(key)) fail(fmt::format("key \"{}\" is given twice", key));
    items.emplace(std::string(key),
                  ConfItem{std::string(value), fmt::format("MEMENTO_CONF {}", key)});
    if (comma == std::string_view::npos) break;
    pos = comma + 1;
  }
  return items;
}

// The value for one key from its own variable and/or MEMENTO_CONF; both must agree.
template <typename T, typename Parse, typename Same>
std::optional<T> merge(const std::optional<std::string>& var, const char* var_name,
                       const std::map<std::string, ConfItem, std::less<>>& conf,
                       std::string_view key, Parse parse, Same same) {
  std::optional<T> from_var;
  if (var) from_var = parse(*var, var_name);
  const auto it = conf.find(key);
  if (it == conf.end()) return from_var;
  T from_conf = parse(it->second.value, it->second.what);
  if (!from_var) return from_conf;
  MEMENTO_EXPECTS(same(*from_var, from_conf),
                  fmt::format("{} conflicts with {}; set it in one place or make them agree",
                              setting(var_name, *var), setting(it->second.what, it->second.value)),
                  ConfigError);
  return from_var;
}

}  // namespace

std::size_t BudgetSpec::resolve(std::size_t capacity) const {
  if (percent > 0) {
    std::size_t share = capacity;  // 100% is the whole device, exactly
    if (percent < 100) {
      // floor(capacity * percent / 100). long double keeps a 64-bit capacity exact. A decimal
      // percent such as 33.3 is not exact in binary (33.29999...), which would floor
      // 1000 * 33.3% to 332; a result within a relative 1e-15 of an integer is that integer.
      const auto cap = static_cast<long double>(capacity);
      const long double product = cap * static_cast<long double>(percent) / 100;
      const long double nearest = std::round(product);
      const long double floored =
          std::fabs(product - nearest) <= product * 1e-15L ? nearest : std::floor(product);
      // Near 2^64 the product may round up to the capacity; clamp (keeps the cast defined).
      share = floored >= cap ? capacity : static_cast<std::size_t>(floored);
    }
    MEMENTO_EXPECTS(share >= 1,
                    fmt::format("{} is less than one byte of the device capacity ({}); "
                                "accepted: {}, or a byte size",
                                setting(source, text), format_bytes(capacity), kPercentHint),
                    ConfigError);
    return share;
  }
  MEMENTO_EXPECTS(bytes > 0, "BudgetSpec::resolve on an empty budget (neither bytes nor percent)");
  MEMENTO_EXPECTS(
      bytes <= capacity,
      fmt::format("{} ({}) exceeds the device capacity ({}); accepted: at most the "
                  "device capacity, or {}",
                  setting(source, text), format_bytes(bytes), format_bytes(capacity), kPercentHint),
      ConfigError);
  return bytes;
}

BudgetSpec parse_budget(std::string_view text, std::string_view what) {
  BudgetSpec spec;
  spec.text = std::string(text);
  spec.source = std::string(what);
  const std::string_view s = trim(text);
  if (!s.empty() && s.back() == '%') {
    spec.percent = parse_percent(text, what, trim(s.substr(0, s.size() - 1)));
    return spec;
  }
  try {
    spec.bytes = parse_bytes(text, what);
  } catch (const ConfigError& e) {
    // parse_bytes lists the byte forms; a budget may also be a percentage.
    rethrow_with(e, fmt::format("or {}", kPercentHint));
  }
  return spec;
}

std::string DeviceSpec::to_string() const {
  switch (kind) {
    case BackendKind::host:
      return host_capacity == 0 ? "host" : "host:" + exact_bytes_text(host_capacity);
    case BackendKind::sim:
      return "sim:" + profile;
    case BackendKind::cuda:
      return "cuda:" + std::to_string(index);
  }
  return "unknown";
}

DeviceSpec parse_device(std::string_view text, std::string_view what) {
  const auto fail = [&](std::string_view reason) {
    MEMENTO_FAIL(ConfigError,
                 fmt::format("{} is not a device: {}; accepted: {}, with PROFILE one of {}",
                             setting(what, text), reason, kDeviceForms, profile_names()));
  };
  const std::string_view s = trim(text);
  if (s.empty()) fail("it is empty");
  const std::size_t colon = s.find(':');
  const std::string_view kind = s.substr(0, colon);
  const bool has_arg = colon != std::string_view::npos;
  const std::string_view arg = has_arg ? s.substr(colon + 1) : std::string_view{};
  if (has_arg && arg.empty()) fail(fmt::format("nothing after \"{}:\"", kind));

  DeviceSpec spec;
  if (kind == "host") {
    spec.kind = BackendKind::host;
    if (!has_arg) return spec;
    try {
      spec.host_capacity = parse_bytes(arg, what);
    } catch (const ConfigError& e) {
      // parse_bytes quotes only the capacity; say where it came from.
      rethrow_with(e, fmt::format("in {} (host:CAPACITY)", setting(what, text)));
    }
  } else if (kind == "sim") {
    spec.kind = BackendKind::sim;
    if (!has_arg) fail("sim needs a profile, sim:PROFILE");
    try {
      spec.profile = find_device_profile(arg).name;
    } catch (const ConfigError&) {
      fail(fmt::format("unknown sim profile \"{}\"", arg));
    }
  } else if (kind == "cuda") {
    spec.kind = BackendKind::cuda;
    if (!has_arg) return spec;
    // Digits only: from_chars alone would accept "1x" by stopping early, and a sign or
    // whitespace is surely a typo.
    int index = 0;
    const auto [ptr, ec] = std::from_chars(arg.data(), arg.data() + arg.size(), index);
    if (!is_digit(arg.front()) || ec != std::errc{} || ptr != arg.data() + arg.size())
      fail(fmt::format("bad cuda device index \"{}\"", arg));
    spec.index = index;
  } else {
    fail(fmt::format("unknown device kind \"{}\"", kind));
  }
  return spec;
}

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
    fail(fmt::format("directory \"{}\" does not exist", parent.string()));
  if (ec) fail(fmt::format("cannot check directory \"{}\": {}", parent.string(), ec.message()));
  if (!fs::is_directory(status)) fail(fmt::format("\"{}\" is not a directory", parent.string()));
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
  config.budget =
      merge<BudgetSpec>(budget, "MEMENTO_BUDGET", conf, "budget", parse_budget, same_budget);
  config.host_budget =
      merge<std::size_t>(host_budget, "MEMENTO_HOST_BUDGET", conf, "host_budget", parse_bytes,
                         [](std::size_t a, std::size_t b) { return a == b; });
  config.device =
      merge<DeviceSpec>(device, "MEMENTO_DEVICE", conf, "device", parse_device, same_device);
  config.policy = merge<std::string>(policy, "MEMENTO_POLICY", conf, "policy", parse_policy,
                                     std::equal_to<std::string>{});
  // "run.json" and "./run.json" agree: the same file.
  config.trace_file = merge<std::string>(trace, "MEMENTO_TRACE", conf, "trace", parse_trace_file,
                                         [](const std::string& a, const std::string& b) {
                                           return std::filesystem::path(a).lexically_normal() ==
                                                  std::filesystem::path(b).lexically_normal();
                                         });
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
