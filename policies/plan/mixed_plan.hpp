// The mixed planner: each block of the chain is kept, selective (its cheapest roles dropped
// and recomputed on use), offloaded (its cheapest roles dropped, the rest copied to host
// memory and prefetched back for the backward) or checkpointed (only its input kept), and
// the head's logits are kept or recomputed chunk by chunk in the backward. The numbers of
// blocks in each state, how many roles the selective and the offloaded blocks drop, and the
// head's choice are found by enumeration: the least estimated extra time whose memory fits
// the budget and whose copies fit the host link and host memory.
//
// Estimates (uniform blocks; a input, s saved bytes, t_f one block's forward time, t_c what
// recomputing a checkpointed block reruns, d the dropped roles' bytes), beside the
// parameters and what the trainer holds:
//   memory: at the head, each block's share (kept a + s, selective a + s - d, checkpointed
//     a, offloaded nothing) plus every chunk's logits and one chunk's gradient (two chunks
//     when the logits are discarded); as the last block runs or is restored, the others'
//     shares plus a whole block (a + s) plus the larger of the backward's gradient buffers
//     and the offloaded blocks still being copied out (as many as one block's copy takes
//     blocks of forward, at least one). The blocks are laid out offloaded first, then
//     checkpointed, selective and kept, so the last block is the largest.
//   time: t_c per checkpoint, the dropped roles' recompute per selective or offloaded block,
//     the logits' recompute if discarded. Copies are taken as free while the offloaded
//     bytes leave within kMixedLinkShare of the forward (L t_f) and come back within that
//     share of the backward before them (2 (L - offloaded) t_f), and fit kMixedHostShare of
//     the pinned host memory; a mix beyond that is not considered.
// When no such mix fits, the plan is the optimal chain programme's (longer segments) with
// the logits discarded, or every block checkpointed.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "policies/plan/plan.hpp"

namespace memento::plan {

/// Of the forward's time (and of the backward's, for the copies back) the copies may take.
inline constexpr double kMixedLinkShare = 0.9;
/// Of the pinned host memory the offloaded blocks may fill.
inline constexpr double kMixedHostShare = 0.9;

enum class MixedState : std::uint8_t { keep, selective, offload, checkpoint, discard };

struct MixedSolution {
  std::vector<MixedState> blocks;
  std::vector<std::string> selective_drops;  ///< roles a selective block drops
  std::vector<std::string> offload_drops;    ///< roles an offloaded block drops (not copied)
  bool discard_logits = false;
  double extra_seconds = 0;  ///< estimated time over keeping everything
  double peak_bytes = 0;     ///< estimated, beside the parameters and the trainer's bytes
  double offload_bytes = 0;  ///< copied to the host per step
};

/// The best mix by the estimates above; std::nullopt when no mix of those states fits.
[[nodiscard]] std::optional<MixedSolution> solve_mixed(const ChainShape& shape,
                                                       const PlanTarget& target);

/// The mixed plan for the best mix, or the fallback described above.
[[nodiscard]] std::unique_ptr<Plan> make_mixed_plan(const ChainShape& shape,
                                                    const PlanTarget& target);
/// Selective recomputation generalised from Megatron's (which drops the attention scores):
/// every block drops its k cheapest roles per byte of recompute time (the roles with
/// recompute kernels, as the mixed planner orders them), k the fewest whose memory fits the
/// budget by the model above, the logits kept; 1 without a budget, all of them when nothing
/// fits (the policy handles the rest). std::nullopt when no role can be recomputed alone.
[[nodiscard]] std::optional<MixedSolution> solve_selective(const ChainShape& shape,
                                                           const PlanTarget& target);
/// The plan named "selective" for solve_selective's solution; nullptr when it has none.
[[nodiscard]] std::unique_ptr<Plan> make_selective_plan(const ChainShape& shape,
                                                        const PlanTarget& target);
/// A mixed plan carrying out `solution` as given; `how` ends its description.
[[nodiscard]] std::unique_ptr<Plan> make_mixed_plan(MixedSolution solution, std::string how);

}  // namespace memento::plan
