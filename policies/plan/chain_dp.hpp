// The optimal planner's dynamic programme, for chains of blocks under a memory limit.
//
// Model (what the runtime does with a checkpointing plan). Each block is kept whole (its
// saved activations stay until its backward), starts a segment (only its input is kept) or
// continues one (nothing kept). The backward of a segment recomputes it from the segment's
// first input, and the recomputed activations of the whole segment stay until their
// backward. Memory beyond the fixed part, with blocks of input a_i and saved s_i bytes:
//   forward:  every kept block's a_i + s_i, every segment start's a_i, plus one block's
//             working set (max a_i + s_i) for the block being computed;
//   backward: while segment [j, k] is restored: the forward memory of blocks before j plus
//             Σ_{i=j..k} (a_i + s_i).
// Cost: the forward FLOPs of every block in a segment (each is recomputed once). The
// programme finds, over all assignments, the least recompute whose memory stays within the
// limit; its state is (blocks assigned, memory of the prefix), and the prefix memory takes
// few distinct values, so it is kept exactly (no discretisation).
#pragma once

#include <optional>
#include <vector>

#include "policies/plan/plan.hpp"

namespace memento::plan {

enum class BlockState : std::uint8_t { kept, segment_start, segment_rest };

struct ChainCosts {
  std::vector<double> input;  ///< a_i
  std::vector<double> saved;  ///< s_i
  std::vector<double> flops;  ///< forward FLOPs of block i
};

struct ChainSolution {
  std::vector<BlockState> states;
  double recompute_flops = 0;
  double peak_bytes = 0;  ///< beyond the fixed part, by the model above
};

/// What the chain's activations may use of `budget_bytes` (0: unlimited, infinite): the budget
/// less a 3% margin for the allocator's rounding and fragmentation, the part no plan changes
/// and the backward's gradient buffers.
[[nodiscard]] double chain_limit(const ChainShape& shape, double budget_bytes);

/// A uniform chain from a shape.
[[nodiscard]] ChainCosts uniform_chain(const ChainShape& shape);

/// The model's peak (beyond the fixed part) and recompute of an assignment; std::nullopt
/// for an invalid one (a segment_rest not inside a segment).
[[nodiscard]] std::optional<ChainSolution> evaluate_chain(const ChainCosts& costs,
                                                          const std::vector<BlockState>& states);

/// The assignment with the least recompute within `limit` bytes (ties: the lower peak);
/// std::nullopt when none fits.
[[nodiscard]] std::optional<ChainSolution> solve_chain(const ChainCosts& costs, double limit);

}  // namespace memento::plan
