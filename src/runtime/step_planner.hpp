// The planner of the budget-only path: on an observed step's graph, decides per tensor
// whether it stays, is offloaded across its widest gap between two uses (copied out after
// the first, back before the second) or is discarded there and recomputed at the second
// use. It starts from nothing and from each candidate the program offers, completes each
// to the memory target greedily (at the predicted peak, the eviction that costs the least
// time per byte), trims evictions the target does not need, and keeps the fastest.
#pragma once

#include <cstddef>
#include <vector>

#include "memento/step_plan.hpp"
#include "runtime/step_graph.hpp"

namespace memento {

/// The link as the planner counts on it (the runtime's and the C API's): copies given half
/// again as long as the measured or datasheet rate says, for what contention costs.
inline constexpr double kLinkDerate = 1.5;

struct PlanInputs {
  double budget_bytes = 0;
  double margin = 0.05;      ///< the target is budget * (1 - margin): rounding, caching
  double d2h_bandwidth = 0;  ///< bytes/s; 0 (either direction): no offloading
  double h2d_bandwidth = 0;
  double host_bytes = 0;  ///< pinned host memory offloads may fill; 0: no offloading
  [[nodiscard]] double target() const { return budget_bytes * (1 - margin); }
  [[nodiscard]] bool can_offload() const {
    return d2h_bandwidth > 0 && h2d_bandwidth > 0 && host_bytes > 0;
  }
};

/// What a tensor does in the step: evicted after its use number `after_use` (0-based) and
/// back for the next one, or kept.
struct TensorDecision {
  PlannedAction action = PlannedAction::keep;
  std::size_t after_use = 0;
};

struct PlanEvaluation {
  double peak_bytes = 0;
  std::size_t peak_point = 0;
  double extra_seconds = 0;  ///< recompute, and copies back that arrive late
};

struct StepPlan {
  std::vector<TensorDecision> decisions;  ///< by creation ordinal
  /// By creation ordinal: the point after which an offloaded tensor's copy back starts, as
  /// late as the link allows (the tensor is present again from the next point on); kNoPoint
  /// when the tensor is not offloaded or its copy out does not fit the host memory.
  std::vector<std::size_t> copy_back_at;
  StepPlanSummary summary;
};

/// The use after which a tensor's widest gap (by program seconds) starts; kNoPoint for a
/// tensor used fewer than twice.
[[nodiscard]] std::size_t widest_gap(const StepGraph& graph, const GraphTensor& t);

/// The predicted peak and extra seconds of `decisions` on `graph`.
[[nodiscard]] PlanEvaluation evaluate_plan(const StepGraph& graph, const PlanInputs& inputs,
                                           const std::vector<TensorDecision>& decisions);

/// Plans the step (see the file comment). The summary's plan_cpu_seconds is left to the
/// caller; `thrashing` and `thrash_free_budget` are set when the predicted step passes
/// twice the observed one.
[[nodiscard]] StepPlan plan_step(const StepGraph& graph, const PlanInputs& inputs,
                                 const std::vector<PlanCandidate>& candidates);

}  // namespace memento
