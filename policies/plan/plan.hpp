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

#include "memento/kernel.hpp"

namespace memento::plan {

/// Where a tensor sits in the model: its block (-1: outside the blocks, e.g. embeddings and
/// the head) and its role in the block ("input" is the block's input, the residual stream).
struct TensorTag {
  int block = -1;
  std::string_view role;
};

enum class PlanAction { keep, discard, offload };

/// A role a block saves for its backward, with its bytes. `recompute`: the kernels that
/// recompute it alone from tensors the block keeps anyway, for the roles cheap enough to drop
/// on their own (selective plans); empty for the rest.
struct BlockRole {
  std::string name;
  double bytes = 0;
  std::vector<KernelCost> recompute = {};
};

/// The shape a planner sees: a chain of identical blocks, and the head after it.
struct ChainShape {
  int blocks = 0;
  double input_bytes = 0;  ///< a block's input (kept by checkpointing plans)
  double saved_bytes = 0;  ///< everything else a block saves for its backward
  double block_flops = 0;  ///< forward FLOPs of one block (what recomputing it costs)
  double fixed_bytes = 0;  ///< memory the plan cannot change (parameters, grads, head...)
  /// Roles inside a block and their bytes, for selective plans (e.g. {"att", bytes}).
  std::vector<BlockRole> roles;
  /// Gradient buffers live at once during one block's backward (the incoming and outgoing
  /// gradients, the largest op's input gradients, the block's parameter gradients).
  double backward_bytes = 0;
  /// One block's forward kernels (the time the forward takes, the window its copies have).
  std::vector<KernelCost> block_kernels = {};
  /// What recomputing a checkpointed block reruns: the kernels up to its last saved role.
  std::vector<KernelCost> recompute_kernels = {};
  /// The head's logits (tagged {-1, "logits"}), computed in `head_chunks` chunks of rows and
  /// kept by default (fixed_bytes counts them all, and one chunk's gradient). A plan may
  /// discard them: each chunk is then recomputed for its backward (`head_recompute`, all
  /// chunks together) and only one chunk is resident at a time.
  double head_logits_bytes = 0;
  int head_chunks = 0;
  std::vector<KernelCost> head_recompute = {};
};

/// What a plan may do to a block's activations during the backward (the tape implements it).
class BlockAccess {
 public:
  virtual ~BlockAccess() = default;
  /// Whether the block's input (its "input" tensor) is resident. True for a block without one.
  [[nodiscard]] virtual bool input_resident(int block) const = 0;
  /// Brings the block's input back, recomputing what it needs, and lets go of it.
  virtual void restore_input(int block) = 0;
  /// Discards every resident activation of the block that has a recipe (recomputed when
  /// next needed); its input too unless `keep_input`.
  virtual void discard(int block, bool keep_input) = 0;
};

class Plan {
 public:
  virtual ~Plan() = default;
  [[nodiscard]] virtual std::string name() const = 0;
  /// What to do with a saved tensor when the forward is done with it.
  [[nodiscard]] virtual PlanAction at_release(const TensorTag& tag) const = 0;
  /// Called as the backward reaches `block` (blocks come last to first), before it reads any
  /// of the block's activations. Default: nothing (the runtime recomputes on use).
  virtual void before_backward(int block, BlockAccess& blocks) const {
    (void)block;
    (void)blocks;
  }
  /// A one-line description of the decision (e.g. "checkpoints at blocks 0, 4, 8").
  [[nodiscard]] virtual std::string describe() const = 0;
};

/// What the budget-aware planners (optimal, selective, mixed) plan for: the budget, and the
/// device's rates, which turn the shape's kernel costs into seconds (DeviceInfo's; 0 where
/// unknown).
struct PlanTarget {
  double budget_bytes = 0;      ///< 0: unlimited
  double matrix_flops = 0;      ///< FLOP/s of tensor-core matrix products
  double vector_flops = 0;      ///< FLOP/s of everything else
  double memory_bandwidth = 0;  ///< device memory bytes/s
  double link_bytes_per_s = 0;  ///< host link, the slower direction; 0: no offloading
  double host_bytes = 0;        ///< pinned host memory offloads may fill
};

/// none, every-layer, sqrt, nested, selective, offload-blocks, optimal, mixed. ConfigError
/// listing the names for an unknown one.
[[nodiscard]] std::unique_ptr<Plan> make_plan(std::string_view name, const ChainShape& shape,
                                              const PlanTarget& target);
/// make_plan for a budget alone (`budget_bytes` 0: unlimited), on no particular device.
[[nodiscard]] std::unique_ptr<Plan> make_plan(std::string_view name, const ChainShape& shape,
                                              double budget_bytes);
[[nodiscard]] std::vector<std::string> plan_names();

}  // namespace memento::plan
