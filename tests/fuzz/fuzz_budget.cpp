// Fuzz target: budgets (memento::parse_budget, include/memento/budget.hpp). The first byte
// picks the syntax (what a bare "60%" is of, whether "0.5" is a fraction) and the device
// capacity and unlimited peak a parsed budget is resolved against; the rest is the text.
// A budget parses or is a ConfigError naming its source; resolving it gives bytes in
// [1, capacity] or a ConfigError; an absolute budget reads back from exact_bytes_text.
#include <array>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>

#include "fuzz_common.hpp"
#include "memento/budget.hpp"
#include "memento/bytes.hpp"
#include "memento/error.hpp"

namespace {

using memento::BudgetBase;
using memento::BudgetSpec;
using memento::BudgetSyntax;
using memento::ConfigError;

constexpr std::array<std::size_t, 4> kCapacities{std::size_t{40} << 30, std::size_t{1} << 20, 1,
                                                 std::numeric_limits<std::size_t>::max()};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::uint8_t mode = data[0];
  BudgetSyntax syntax;
  syntax.bare_percent = (mode & 1) != 0 ? BudgetBase::peak : BudgetBase::device;
  syntax.fractions = (mode & 2) != 0;
  const std::size_t capacity = kCapacities[(mode >> 2) & 3];
  std::optional<std::size_t> peak;
  if ((mode & 16) != 0) peak = (mode & 32) != 0 ? capacity : capacity / 3 + 1;
  const std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);

  BudgetSpec spec;
  try {
    spec = memento::parse_budget(text, "--budget", syntax);
  } catch (const ConfigError& e) {
    const std::string_view message = e.what();
    MEMENTO_FUZZ_CHECK(message.starts_with("--budget=\""),
                       "the message names the setting: " + std::string(message));
    MEMENTO_FUZZ_CHECK(message.find("accepted:") != std::string_view::npos,
                       "the message says what is accepted: " + std::string(message));
    return 0;
  }
  MEMENTO_FUZZ_CHECK(spec.text == text && spec.source == "--budget", "text and source are kept");
  MEMENTO_FUZZ_CHECK(spec.same_as(spec), "a budget is the same as itself");
  if (spec.is_share()) {
    MEMENTO_FUZZ_CHECK(spec.percent > 0 && spec.percent <= 100,
                       "a share is in (0, 100]: " + std::to_string(spec.percent));
    MEMENTO_FUZZ_CHECK(spec.bytes == 0, "a share has no bytes");
  } else {
    MEMENTO_FUZZ_CHECK(spec.bytes > 0, "an absolute budget is positive");
    if (!syntax.fractions) {
      const std::string exact = memento::exact_bytes_text(spec.bytes);
      const BudgetSpec again = memento::parse_budget(exact, "exact", syntax);
      MEMENTO_FUZZ_CHECK(again.same_as(spec), exact + " reads back as another budget");
    }
  }
  (void)spec.describe();

  try {
    const std::size_t bytes = spec.resolve(capacity, peak);
    MEMENTO_FUZZ_CHECK(bytes >= 1 && bytes <= capacity,
                       "resolved to " + std::to_string(bytes) + " of " + std::to_string(capacity));
    if (spec.is_share()) {
      const std::size_t whole = spec.base == BudgetBase::device ? capacity : *peak;
      MEMENTO_FUZZ_CHECK(bytes <= whole, "a share is at most its whole");
      if (spec.percent == 100) MEMENTO_FUZZ_CHECK(bytes == whole, "100% is all of it");
    } else {
      MEMENTO_FUZZ_CHECK(bytes == spec.bytes, "an absolute budget resolves to itself");
    }
  } catch (const ConfigError& e) {
    const std::string_view message = e.what();
    MEMENTO_FUZZ_CHECK(
        message.find("--budget") != std::string_view::npos &&
            message.find("accepted:") != std::string_view::npos,
        "the message names the setting and what is accepted: " + std::string(message));
  }
  return 0;
}
