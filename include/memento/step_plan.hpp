// The budget-only path: the runtime observes a step (every tracked tensor's bytes, producer
// and modelled time, inputs, uses in order and the memory around them), plans for the
// budget per tensor keep / offload / discard-and-recompute, and applies the plan from the
// next step on. The dynamic policy only handles pressure the plan did not foresee.
#pragma once

#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace memento {

enum class PlannedAction { keep, offload, discard };

/// A plan by region and role a program offers as a starting point of the search (memento's
/// models offer their static planners' plans: every-layer, selective, sqrt, mixed). `decide`
/// says what a tensor of that region (a block index, -1 outside the blocks) and role does
/// once the forward is done with it; the planner completes and trims it for the budget.
struct PlanCandidate {
  std::string name;
  std::function<PlannedAction(int region, std::string_view role)> decide;
};

/// What a plan does within one region (a block) the program marked.
struct RegionPlan {
  int region = 0;
  std::size_t kept = 0, offloaded = 0, discarded = 0;
  std::size_t kept_bytes = 0, offloaded_bytes = 0, discarded_bytes = 0;
};

/// What a step's plan does and what it expects, as the runtime made it.
struct StepPlanSummary {
  std::string start;  ///< the candidate the search started from ("graph": nothing)
  std::size_t kept = 0, offloaded = 0, discarded = 0;  ///< tensors with a long gap, by action
  std::size_t kept_bytes = 0, offloaded_bytes = 0, discarded_bytes = 0;
  std::size_t budget_bytes = 0;        ///< the allocator's budget when planned
  std::size_t target_bytes = 0;        ///< what the plan packs the step into (budget less margin)
  std::size_t predicted_peak = 0;      ///< the observed step's other bytes plus the kept tensors
  double observed_seconds = 0;         ///< modelled compute of the observed step, no recompute
  double predicted_extra_seconds = 0;  ///< recompute plus copies the step cannot hide
  bool fits = true;                    ///< the plan reaches the target
  double plan_cpu_seconds = 0;         ///< CPU time the planning took (this thread)
  int candidates = 0;                  ///< starting points searched
  /// When the predicted step passes twice the observed one: the smallest budget that keeps
  /// it under that (none found: std::nullopt with `thrashing` set).
  bool thrashing = false;
  std::optional<std::size_t> thrash_free_budget;
  std::vector<RegionPlan> regions;  ///< per marked region (region >= 0), in region order
  /// One line: "keep 120 (2.1 GiB), offload 12 (1.5 GiB), recompute 48 (3.0 GiB); from
  /// selective; +4.1% predicted".
  [[nodiscard]] std::string describe() const;
};

/// How a step ran: without planning, observed for a plan, or under the plan.
enum class StepPhase { dynamic, observed, planned };

[[nodiscard]] std::string_view to_string(StepPhase phase) noexcept;

}  // namespace memento
