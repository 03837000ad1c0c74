// Budgets: bytes, or a share of device memory or of the unlimited peak. A bad value is a
// ConfigError naming where it came from, the value and what is accepted.
#include "memento/budget.hpp"

#include <fmt/format.h>

#include <charconv>
#include <cmath>
#include <string>
#include <string_view>
#include <system_error>

#include "common/text.hpp"
#include "memento/bytes.hpp"
#include "memento/error.hpp"

namespace memento {
namespace {

using text::is_digit;
using text::lower;
using text::rethrow_with;
using text::setting;
using text::trim;

std::string percent_hint(BudgetBase base) {
  return base == BudgetBase::device
             ? "a percentage of device memory in (0, 100], e.g. 60% or 12.5%, or of the "
               "unlimited peak with 60%peak"
             : "a percentage of the unlimited peak in (0, 100], e.g. 70% or 12.5%, or of device "
               "memory with 70%device";
}

std::string hint(const BudgetSyntax& syntax) {
  std::string h = percent_hint(syntax.bare_percent);
  if (syntax.fractions) h += ", or a fraction of the unlimited peak in (0, 1], e.g. 0.5";
  return h;
}

// Plain decimals only (D+ or D+.D+), as for byte sizes: from_chars alone would also take
// "inf", "1e2" and hex floats.
std::optional<double> plain_decimal(std::string_view number) {
  const std::size_t dot = number.find('.');
  const bool well_formed =
      !number.empty() && is_digit(number.front()) && is_digit(number.back()) &&
      number.find_first_not_of("0123456789.") == std::string_view::npos &&
      (dot == std::string_view::npos || number.find('.', dot + 1) == std::string_view::npos);
  if (!well_formed) return std::nullopt;
  double value = 0;
  const auto [ptr, ec] = std::from_chars(number.data(), number.data() + number.size(), value);
  if (ec != std::errc{} || ptr != number.data() + number.size()) return std::nullopt;
  return value;
}

// "60%", "60%peak", "60% device": the share and its base.
void parse_share(BudgetSpec& spec, std::string_view s, const BudgetSyntax& syntax) {
  const auto fail = [&](std::string_view reason) {
    MEMENTO_FAIL(ConfigError, fmt::format("{} is not a valid budget: {}; accepted: {}",
                                          setting(spec.source, spec.text), reason, hint(syntax)));
  };
  const std::size_t pct = s.find('%');
  const std::string_view number = trim(s.substr(0, pct));
  const std::string base = lower(trim(s.substr(pct + 1)));
  if (base.empty())
    spec.base = syntax.bare_percent;
  else if (base == "device")
    spec.base = BudgetBase::device;
  else if (base == "peak")
    spec.base = BudgetBase::peak;
  else
    fail(fmt::format("\"{}\" after '%' is neither device nor peak", text::printable(base)));
  if (number.empty()) fail("no number before '%'");
  if (number.front() == '-') fail("a percentage must be in (0, 100]");
  const std::optional<double> percent = plain_decimal(number);
  if (!percent) fail(fmt::format("malformed number \"{}\"", text::printable(number)));
  if (!(*percent > 0 && *percent <= 100)) fail("a percentage must be in (0, 100]");
  spec.percent = *percent;
}

// floor(whole * percent / 100). long double keeps a 64-bit size exact. A decimal percent
// such as 33.3 is not exact in binary (33.29999...), which would floor 1000 * 33.3% to 332;
// a result within a relative 1e-15 of an integer is that integer.
std::size_t share_of(std::size_t whole, double percent) {
  if (percent >= 100) return whole;  // 100% is all of it, exactly
  const auto w = static_cast<long double>(whole);
  const long double product = w * static_cast<long double>(percent) / 100;
  const long double nearest = std::round(product);
  const long double floored =
      std::fabs(product - nearest) <= product * 1e-15L ? nearest : std::floor(product);
  // Near 2^64 the product may round up to the whole; clamp (keeps the cast defined).
  return floored >= w ? whole : static_cast<std::size_t>(floored);
}

}  // namespace

const char* to_string(BudgetBase base) noexcept {
  return base == BudgetBase::device ? "device memory" : "the unlimited peak";
}

std::string BudgetSpec::describe() const {
  if (!is_share()) return trim(text).empty() ? format_bytes(bytes) : std::string(trim(text));
  return fmt::format("{:g}% of {}", percent, to_string(base));
}

std::size_t BudgetSpec::resolve(std::size_t capacity,
                                std::optional<std::size_t> unlimited_peak) const {
  std::size_t budget = bytes;
  if (is_share()) {
    MEMENTO_EXPECTS(base == BudgetBase::device || unlimited_peak.has_value(),
                    fmt::format("{} is a share of the unlimited peak, which is not known "
                                "here; accepted: a byte size, or {}",
                                setting(source, text), percent_hint(BudgetBase::device)),
                    ConfigError);
    const std::size_t whole = base == BudgetBase::device ? capacity : *unlimited_peak;
    budget = share_of(whole, percent);
    MEMENTO_EXPECTS(budget >= 1,
                    fmt::format("{} is less than one byte of {} ({}); accepted: a byte size, "
                                "or {}",
                                setting(source, text), to_string(base), format_bytes(whole),
                                percent_hint(base)),
                    ConfigError);
  }
  MEMENTO_EXPECTS(budget > 0, "BudgetSpec::resolve on an empty budget (neither bytes nor percent)");
  MEMENTO_EXPECTS(budget <= capacity,
                  fmt::format("{} ({}) exceeds the device capacity ({}); accepted: at most the "
                              "device capacity, or {}",
                              setting(source, text), format_bytes(budget), format_bytes(capacity),
                              percent_hint(base)),
                  ConfigError);
  return budget;
}

BudgetSpec parse_budget(std::string_view text, std::string_view what, BudgetSyntax syntax) {
  BudgetSpec spec;
  spec.text = std::string(text);
  spec.source = std::string(what);
  const std::string_view s = trim(text);
  if (s.find('%') != std::string_view::npos) {
    parse_share(spec, s, syntax);
    return spec;
  }
  if (syntax.fractions) {
    // "0.5" and "1" are fractions of the unlimited peak; larger integers are bytes.
    if (const std::optional<double> x = plain_decimal(s);
        x && (*x <= 1 || s.find('.') != std::string_view::npos)) {
      MEMENTO_EXPECTS(*x > 0 && *x <= 1,
                      fmt::format("{} is not a valid budget: a fraction of the unlimited peak "
                                  "must be in (0, 1]; accepted: a byte size, or {}",
                                  setting(what, text), hint(syntax)),
                      ConfigError);
      spec.percent = *x * 100;
      spec.base = BudgetBase::peak;
      return spec;
    }
  }
  try {
    spec.bytes = parse_bytes(text, what);
  } catch (const ConfigError& e) {
    // parse_bytes lists the byte forms; a budget may also be a share.
    rethrow_with(e, fmt::format("or {}", hint(syntax)));
  }
  return spec;
}

}  // namespace memento
