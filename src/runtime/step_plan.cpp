#include "memento/step_plan.hpp"

#include <fmt/format.h>

#include "memento/bytes.hpp"

namespace memento {

std::string StepPlanSummary::describe() const {
  std::string out =
      fmt::format("keep {} ({}), offload {} ({}), recompute {} ({}); from {}; {:+.1f}% predicted",
                  kept, format_bytes(kept_bytes), offloaded, format_bytes(offloaded_bytes),
                  discarded, format_bytes(discarded_bytes), start,
                  observed_seconds > 0 ? 100 * predicted_extra_seconds / observed_seconds : 0.0);
  if (!fits) out += fmt::format("; does not reach {}", format_bytes(target_bytes));
  if (thrashing)
    out += thrash_free_budget ? fmt::format(
                                    "; thrashes (over twice the step): {} or more keeps "
                                    "it under",
                                    format_bytes(*thrash_free_budget))
                              : std::string("; thrashes (over twice the step) at any budget");
  return out;
}

std::string_view to_string(StepPhase phase) noexcept {
  switch (phase) {
    case StepPhase::dynamic:
      return "dynamic";
    case StepPhase::observed:
      return "observed";
    case StepPhase::planned:
      return "planned";
  }
  return "?";
}

}  // namespace memento
