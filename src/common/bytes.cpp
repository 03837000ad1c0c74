// Byte sizes as people write them in variables and flags ("8GiB", "512MB", "1.5G") and as
// memento prints them ("1.50 GiB").
#include "memento/bytes.hpp"

#include <fmt/format.h>

#include <array>
#include <cctype>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>

#include "common/text.hpp"
#include "memento/error.hpp"

namespace memento {
namespace {

using text::is_digit;
using text::is_space;
using text::lower;
using text::setting;
using text::trim;

constexpr std::size_t kMax = std::numeric_limits<std::size_t>::max();

constexpr std::string_view kAccepted =
    "accepted: a positive number with an optional unit B, K/KiB, M/MiB, G/GiB, T/TiB "
    "(powers of 1024) or KB/MB/GB/TB (powers of 1000), e.g. 8GiB, 512MB, 1.5G, 1073741824";

struct Unit {
  std::string_view name;  // lower case; matched case-insensitively
  std::size_t multiplier;
};

constexpr std::size_t kKi = 1024;
constexpr std::size_t kK = 1000;
constexpr std::array<Unit, 14> kUnits{{
    {"", 1},
    {"b", 1},
    {"k", kKi},
    {"kib", kKi},
    {"kb", kK},
    {"m", kKi* kKi},
    {"mib", kKi* kKi},
    {"mb", kK* kK},
    {"g", kKi* kKi* kKi},
    {"gib", kKi* kKi* kKi},
    {"gb", kK* kK* kK},
    {"t", kKi* kKi* kKi* kKi},
    {"tib", kKi* kKi* kKi* kKi},
    {"tb", kK* kK* kK* kK},
}};

const Unit* find_unit(std::string_view name) {
  const std::string key = lower(name);
  for (const Unit& u : kUnits)
    if (u.name == key) return &u;
  return nullptr;
}

[[noreturn]] void fail(std::string_view what, std::string_view text, std::string_view reason) {
  MEMENTO_FAIL(ConfigError, fmt::format("{} is not a byte size: {}; {}", setting(what, text),
                                        reason, kAccepted));
}

}  // namespace

std::size_t parse_bytes(std::string_view text, std::string_view what) {
  const std::string_view s = trim(text);
  if (s.empty()) fail(what, text, "it is empty");
  if (s.front() == '-') fail(what, text, "it is negative");

  // The number is the leading run of digits and dots; it must read D+ or D+.D+ (no sign,
  // no ".5", no "1.").
  std::size_t end = 0;
  while (end < s.size() && (is_digit(s[end]) || s[end] == '.')) ++end;
  const std::string_view number = s.substr(0, end);
  if (number.empty()) fail(what, text, "it does not start with a number");
  const std::size_t dot = number.find('.');
  const std::string_view int_part = number.substr(0, dot);
  const std::string_view frac_part =
      dot == std::string_view::npos ? std::string_view{} : number.substr(dot + 1);
  if (int_part.empty() || (dot != std::string_view::npos && frac_part.empty()) ||
      frac_part.find('.') != std::string_view::npos)
    fail(what, text, fmt::format("malformed number \"{}\"", text::printable(number)));

  const std::string_view unit_text = trim(s.substr(end));
  // "1e9" would otherwise be reported as the unknown unit "e9"; say plainly that exponents
  // are not accepted, since "1e9" bytes is ambiguous next to the decimal/binary unit letters.
  if (unit_text.size() >= 2 && (unit_text[0] == 'e' || unit_text[0] == 'E') &&
      (is_digit(unit_text[1]) || unit_text[1] == '+' || unit_text[1] == '-'))
    fail(what, text, "exponent notation is not accepted");
  const Unit* unit = find_unit(unit_text);
  if (unit == nullptr)
    fail(what, text, fmt::format("unknown unit \"{}\"", text::printable(unit_text)));
  const std::size_t mult = unit->multiplier;

  // Exact integer arithmetic (no double) so "8GiB" and 20-digit byte counts are exact and
  // overflow is detected rather than rounded away.
  const std::string overflow = fmt::format("it exceeds the largest size ({} bytes)", kMax);
  std::size_t whole = 0;
  for (char c : int_part) {
    const auto digit = static_cast<std::size_t>(c - '0');
    if (whole > (kMax - digit) / 10) fail(what, text, overflow);
    whole = whole * 10 + digit;
  }
  if (whole != 0 && whole > kMax / mult) fail(what, text, overflow);
  whole *= mult;

  // floor(0.d1d2..dn * mult) by Horner's rule from the last digit: floor((a + floor(x)) / 10)
  // == floor((a + x) / 10) for integer a, so flooring at each step is exact. Each step stays
  // below 10 * mult <= 10 * 2^40, far from overflow.
  std::size_t frac = 0;
  bool frac_nonzero = false;
  for (auto it = frac_part.rbegin(); it != frac_part.rend(); ++it) {
    const auto digit = static_cast<std::size_t>(*it - '0');
    frac_nonzero = frac_nonzero || digit != 0;
    frac = (digit * mult + frac) / 10;
  }
  if (frac > kMax - whole) fail(what, text, overflow);
  const std::size_t bytes = whole + frac;

  if (bytes == 0) fail(what, text, frac_nonzero ? "it is less than one byte" : "it is zero");
  return bytes;
}

std::string format_bytes(std::size_t bytes) {
  constexpr std::array<std::string_view, 7> kNames{"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  if (bytes < kKi) return fmt::format("{} B", bytes);
  std::size_t i = 0;
  double value = static_cast<double>(bytes);
  // 1023.995 and up would print as "1024.00", so it moves to the next unit ("1.00 MiB").
  while (value >= 1023.995 && i + 1 < kNames.size()) {
    value /= 1024.0;
    ++i;
  }
  return fmt::format("{:.2f} {}", value, kNames[i]);
}

std::string exact_bytes_text(std::size_t bytes) {
  constexpr std::string_view kExactUnits[] = {"TiB", "GiB", "MiB", "KiB"};
  std::size_t unit = std::size_t{1} << 40;
  for (std::string_view name : kExactUnits) {
    if (bytes % unit == 0) return fmt::format("{}{}", bytes / unit, name);
    unit >>= 10;
  }
  return std::to_string(bytes);
}

}  // namespace memento
