// The static planners. Each turns a chain's shape into a per-block decision; at_release then
// maps (block, role) to keep, discard or offload.
#include "policies/plan/plan.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>

#include "memento/error.hpp"
#include "policies/plan/chain_dp.hpp"
#include "policies/plan/mixed_plan.hpp"

namespace memento::plan {
namespace {

class NonePlan final : public Plan {
 public:
  std::string name() const override { return "none"; }
  PlanAction at_release(const TensorTag&) const override { return PlanAction::keep; }
  std::string describe() const override { return "every activation kept"; }
};

/// Checkpointing by block state (see chain_dp.hpp): kept blocks keep everything, a segment's
/// first block keeps only its input, the rest of a segment keeps nothing; what is dropped is
/// recomputed, segment by segment, in the backward.
class SegmentPlan final : public Plan {
 public:
  SegmentPlan(std::string name, std::vector<BlockState> states)
      : name_(std::move(name)), states_(std::move(states)) {}
  std::string name() const override { return name_; }
  PlanAction at_release(const TensorTag& tag) const override {
    if (tag.block < 0 || static_cast<std::size_t>(tag.block) >= states_.size())
      return PlanAction::keep;
    switch (states_[static_cast<std::size_t>(tag.block)]) {
      case BlockState::kept:
        return PlanAction::keep;
      case BlockState::segment_start:
        return tag.role == "input" ? PlanAction::keep : PlanAction::discard;
      case BlockState::segment_rest:
        return PlanAction::discard;
    }
    return PlanAction::keep;
  }
  std::string describe() const override {
    std::vector<int> starts;
    int kept = 0;
    for (std::size_t i = 0; i < states_.size(); ++i) {
      if (states_[i] == BlockState::segment_start) starts.push_back(static_cast<int>(i));
      kept += states_[i] == BlockState::kept;
    }
    return fmt::format("{} of {} blocks kept whole; checkpoints at blocks {}", kept, states_.size(),
                       starts.empty() ? "none" : fmt::format("{}", fmt::join(starts, ", ")));
  }

 private:
  std::string name_;
  std::vector<BlockState> states_;
};

/// Two-level recursive checkpointing (Chen et al. 2016, section 4): the forward keeps only
/// the inputs of outer segments of k1 blocks. As the backward reaches an inner segment of k2
/// blocks, the inner checkpoints of its outer segment up to it are recomputed one inner
/// segment at a time, each inner segment discarded again behind its checkpoint; then the
/// runtime recomputes the inner segment itself on use. Memory: about L/k1 + k1/k2 inputs
/// and k2 blocks; cost: up to two forwards of each block (k1 = L^(2/3), k2 = L^(1/3)).
class NestedPlan final : public Plan {
 public:
  explicit NestedPlan(int blocks)
      : blocks_(blocks), outer_(root(double(blocks) * blocks)), inner_(root(double(blocks))) {}
  std::string name() const override { return "nested"; }
  PlanAction at_release(const TensorTag& tag) const override {
    if (tag.block < 0 || tag.block >= blocks_) return PlanAction::keep;
    return tag.block % outer_ == 0 && tag.role == "input" ? PlanAction::keep : PlanAction::discard;
  }
  void before_backward(int block, BlockAccess& blocks) const override {
    if (block < 0 || block >= blocks_) return;
    const int outer = block - block % outer_;
    const int inner = outer + (block - outer) / inner_ * inner_;
    for (int j = outer + inner_; j <= inner; j += inner_) {
      if (blocks.input_resident(j)) continue;
      blocks.restore_input(j);
      for (int m = j - inner_; m < j; ++m) blocks.discard(m, (m - outer) % inner_ == 0);
    }
  }
  std::string describe() const override {
    return fmt::format(
        "outer segments of {} blocks (checkpointed in the forward), inner segments of {} "
        "(checkpoints recomputed in the backward)",
        outer_, inner_);
  }

 private:
  // ceil(cbrt(x)), exact on cubes (cbrt(729) may come out a hair above 9).
  static int root(double x) {
    return std::max(1, static_cast<int>(std::ceil(std::cbrt(x) - 1e-9)));
  }
  int blocks_, outer_, inner_;
};

/// Megatron's selective recomputation: only the attention scores are dropped. For chains
/// whose roles carry no recompute kernels (solve_selective has nothing to order); models
/// without scores then drop nothing.
class ScoresOnlyPlan final : public Plan {
 public:
  explicit ScoresOnlyPlan(bool has_scores) : has_scores_(has_scores) {}
  std::string name() const override { return "selective"; }
  PlanAction at_release(const TensorTag& tag) const override {
    return tag.block >= 0 && tag.role == "att" ? PlanAction::discard : PlanAction::keep;
  }
  std::string describe() const override {
    return has_scores_ ? "attention scores recomputed, the rest kept"
                       : "no role to recompute: all kept";
  }

 private:
  bool has_scores_;
};

/// Activation offloading by block (torchao / torchtune style): every block's saved
/// activations but the last block's (its backward comes first) go to host memory as the
/// forward leaves them; the prefetcher brings them back ahead of the backward.
class OffloadBlocksPlan final : public Plan {
 public:
  explicit OffloadBlocksPlan(int blocks) : blocks_(blocks) {}
  std::string name() const override { return "offload-blocks"; }
  PlanAction at_release(const TensorTag& tag) const override {
    return tag.block >= 0 && tag.block + 1 < blocks_ ? PlanAction::offload : PlanAction::keep;
  }
  std::string describe() const override {
    return fmt::format("blocks 0..{} offloaded, the last kept", blocks_ - 2);
  }

 private:
  int blocks_;
};

/// Segments of `k` blocks, each checkpointed at its first block.
std::vector<BlockState> uniform_segments(int blocks, int k) {
  std::vector<BlockState> s(static_cast<std::size_t>(blocks), BlockState::segment_rest);
  for (int i = 0; i < blocks; i += k) s[static_cast<std::size_t>(i)] = BlockState::segment_start;
  return s;
}

}  // namespace

std::vector<std::string> plan_names() {
  return {"none",      "every-layer",    "sqrt",    "nested",
          "selective", "offload-blocks", "optimal", "mixed"};
}

std::unique_ptr<Plan> make_plan(std::string_view name, const ChainShape& shape,
                                double budget_bytes) {
  return make_plan(name, shape, PlanTarget{.budget_bytes = budget_bytes});
}

std::unique_ptr<Plan> make_plan(std::string_view name, const ChainShape& shape,
                                const PlanTarget& target) {
  MEMENTO_EXPECTS(shape.blocks > 0, "make_plan: the chain has no blocks");
  if (name == "none") return std::make_unique<NonePlan>();
  if (name == "every-layer")
    return std::make_unique<SegmentPlan>("every-layer", uniform_segments(shape.blocks, 1));
  if (name == "sqrt") {
    const int k = static_cast<int>(std::ceil(std::sqrt(static_cast<double>(shape.blocks))));
    return std::make_unique<SegmentPlan>("sqrt", uniform_segments(shape.blocks, k));
  }
  if (name == "nested") return std::make_unique<NestedPlan>(shape.blocks);
  if (name == "selective") {
    if (std::unique_ptr<Plan> p = make_selective_plan(shape, target)) return p;
    const bool scores = std::any_of(shape.roles.begin(), shape.roles.end(),
                                    [](const BlockRole& r) { return r.name == "att"; });
    return std::make_unique<ScoresOnlyPlan>(scores);
  }
  if (name == "offload-blocks") return std::make_unique<OffloadBlocksPlan>(shape.blocks);
  if (name == "optimal") {
    std::optional<ChainSolution> best =
        solve_chain(uniform_chain(shape), chain_limit(shape, target.budget_bytes));
    // Nothing fits the model: checkpoint every block, the least memory a plan can give,
    // and let the dynamic policy (and OutOfMemory's figures) say the rest.
    return std::make_unique<SegmentPlan>("optimal",
                                         best ? best->states : uniform_segments(shape.blocks, 1));
  }
  if (name == "mixed") return make_mixed_plan(shape, target);
  MEMENTO_FAIL(ConfigError, fmt::format("unknown plan \"{}\"; accepted: {}", name,
                                        fmt::join(plan_names(), ", ")));
}

}  // namespace memento::plan
