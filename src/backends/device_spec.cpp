// Device names as people write them in MEMENTO_DEVICE and --device, and back.
#include "memento/device_spec.hpp"

#include <fmt/format.h>

#include <charconv>
#include <string>
#include <string_view>
#include <system_error>

#include "common/text.hpp"
#include "memento/bytes.hpp"
#include "memento/device_profile.hpp"
#include "memento/error.hpp"

namespace memento {
namespace {

using text::is_digit;
using text::rethrow_with;
using text::setting;
using text::trim;

constexpr std::string_view kDeviceForms =
    "host, host:CAPACITY (e.g. host:16GiB), sim:PROFILE, sim:PATH.json (a profile from "
    "`memento calibrate`), cuda (device 0) or cuda:N "
    "(N a device index >= 0)";

std::string profile_names() {
  std::string names;
  for (const DeviceProfile& p : device_profiles()) {
    if (!names.empty()) names += ", ";
    names += p.name;
  }
  return names;
}

}  // namespace

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
  if (has_arg && arg.empty()) fail(fmt::format("nothing after \"{}:\"", text::printable(kind)));

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
    if (arg.ends_with(".json")) {
      try {
        spec.profile = find_device_profile(arg).name;
      } catch (const ConfigError& e) {
        fail(fmt::format("its profile file cannot be used: {}", text::printable(e.what())));
      }
      return spec;
    }
    try {
      spec.profile = find_device_profile(arg).name;
    } catch (const ConfigError&) {
      fail(fmt::format("unknown sim profile \"{}\"", text::printable(arg)));
    }
  } else if (kind == "cuda") {
    spec.kind = BackendKind::cuda;
    if (!has_arg) return spec;
    // Digits only: from_chars alone would accept "1x" by stopping early, and a sign or
    // whitespace is surely a typo.
    int index = 0;
    const auto [ptr, ec] = std::from_chars(arg.data(), arg.data() + arg.size(), index);
    if (!is_digit(arg.front()) || ec != std::errc{} || ptr != arg.data() + arg.size())
      fail(fmt::format("bad cuda device index \"{}\"", text::printable(arg)));
    spec.index = index;
  } else {
    fail(fmt::format("unknown device kind \"{}\"", text::printable(kind)));
  }
  return spec;
}

}  // namespace memento
