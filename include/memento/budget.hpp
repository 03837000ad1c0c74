// A device-memory budget as people write it: bytes ("8GiB"), or a share ("60%") of device
// memory or of the unlimited peak (the peak of the same step run without a budget). One
// parser and one resolve for every entry point: MEMENTO_BUDGET, the C API, and the --budget
// flags of train, demo, compare, plan and replay.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace memento {

/// What a percentage budget is a share of.
enum class BudgetBase : std::uint8_t {
  device,  ///< device memory (the backend's capacity)
  peak,    ///< the unlimited peak: the same workload's peak without a budget
};

/// "device memory" or "the unlimited peak".
[[nodiscard]] const char* to_string(BudgetBase base) noexcept;

/// How a bare share is read where a budget is parsed.
struct BudgetSyntax {
  /// What "60%" means without an explicit "device" or "peak" after it: device memory in
  /// MEMENTO_BUDGET, train and demo; the unlimited peak in compare, plan and replay.
  BudgetBase bare_percent = BudgetBase::device;
  /// A plain number in (0, 1] ("0.5") is a fraction of the unlimited peak (replay's form).
  bool fractions = false;
};

/// A parsed budget: absolute bytes, or a percentage of a base.
struct BudgetSpec {
  std::size_t bytes = 0;                 ///< absolute budget, when percent == 0
  double percent = 0;                    ///< in (0, 100] for a share
  BudgetBase base = BudgetBase::device;  ///< what a share is of
  std::string text;                      ///< as written, for messages
  std::string source;  ///< where it came from: "MEMENTO_BUDGET", "MEMENTO_CONF budget", "--budget"

  [[nodiscard]] bool is_share() const noexcept { return percent > 0; }

  /// The budget in bytes: a share of `capacity` or of `unlimited_peak` (by `base`), or the
  /// absolute bytes. ConfigError naming the source when it exceeds `capacity`, when it is
  /// less than one byte, or when it is a share of the unlimited peak and none is known here.
  [[nodiscard]] std::size_t resolve(std::size_t capacity,
                                    std::optional<std::size_t> unlimited_peak = {}) const;

  /// How it reads: "70% of the unlimited peak", "60% of device memory", or the bytes as given.
  [[nodiscard]] std::string describe() const;

  /// Budgets are equal when they resolve alike, whatever their text and source.
  [[nodiscard]] bool same_as(const BudgetSpec& other) const noexcept {
    return bytes == other.bytes && percent == other.percent && base == other.base;
  }
};

/// Parses "8GiB", "512MB", "1.5G", "1073741824" (bytes), "60%" (a share of the syntax's bare
/// base), "60%device", "60%peak" and, where the syntax allows fractions, "0.5". ConfigError
/// naming `what`, the value and the accepted forms otherwise.
[[nodiscard]] BudgetSpec parse_budget(std::string_view text, std::string_view what,
                                      BudgetSyntax syntax = {});

}  // namespace memento
