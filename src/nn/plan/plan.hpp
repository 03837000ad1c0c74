// Static planners: before a step, decide what each saved activation does once the forward
// is done with it: stay resident, be discarded (recomputed from its recipe when the backward
// needs it) or be offloaded (copied back ahead of the backward by the prefetcher). A plan
// decides what is kept; the dynamic policy handles whatever pressure remains.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace memento::nn {

/// Where a tensor sits in the model: its block (-1: outside the blocks, e.g. embeddings and
/// the head) and its role in the block ("input" is the block's input, the residual stream).
struct TensorTag {
  int block = -1;
  std::string_view role;
};

enum class PlanAction { keep, discard, offload };

/// The shape a planner sees: a chain of identical blocks.
struct ChainShape {
  int blocks = 0;
  double input_bytes = 0;  ///< a block's input (kept by checkpointing plans)
  double saved_bytes = 0;  ///< everything else a block saves for its backward
  double block_flops = 0;  ///< forward FLOPs of one block (what recomputing it costs)
  double fixed_bytes = 0;  ///< memory the plan cannot change (parameters, grads, head...)
  /// Roles inside a block and their bytes, for selective plans (e.g. {"att", bytes}).
  std::vector<std::pair<std::string, double>> roles;
};

class Plan {
 public:
  virtual ~Plan() = default;
  [[nodiscard]] virtual std::string name() const = 0;
  /// What to do with a saved tensor when the forward is done with it.
  [[nodiscard]] virtual PlanAction at_release(const TensorTag& tag) const = 0;
  /// A one-line description of the decision (e.g. "checkpoints at blocks 0, 4, 8").
  [[nodiscard]] virtual std::string describe() const = 0;
};

/// none, every-layer, sqrt, selective, offload-blocks, optimal. `budget_bytes` is what the
/// optimal planner plans for (0: unlimited). ConfigError listing the names for an unknown
/// one.
[[nodiscard]] std::unique_ptr<Plan> make_plan(std::string_view name, const ChainShape& shape,
                                              double budget_bytes);
[[nodiscard]] std::vector<std::string> plan_names();

}  // namespace memento::nn
