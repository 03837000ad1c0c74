// The binomial-checkpointing bound of Griewank & Walther ("Algorithm 799: revolve", ACM
// TOMS 26(1), 2000), and the uniform chain log it applies to: the reference no replay of a
// chain under a memory budget may beat.
#pragma once

#include <cstddef>
#include <string>

namespace memento::replay {

/// C(n, k), saturating at SIZE_MAX.
[[nodiscard]] std::size_t binomial(std::size_t n, std::size_t k) noexcept;

/// t(l, s): the fewest forward steps (advances) that reverse a chain of `l` steps with `s`
/// checkpoints, the chain's input state among them, and one working state: r * l -
/// C(s + r, s + 1), r the least integer with C(s + r, s) >= l. Each reversal step runs
/// its own forward step on top (revolve's "youturn"), so without a memory limit t = l - 1;
/// s = 1 gives l (l - 1) / 2; l <= 1 gives 0; s = 0 and l >= 2 cannot be reversed (SIZE_MAX).
[[nodiscard]] std::size_t revolve_forward_steps(std::size_t l, std::size_t s) noexcept;

/// A uniform chain as a DTR-style log: one input constant of `bytes`, `n` forward ops of
/// `forward_ns` each (activation i from activation i - 1, each `bytes`), the loss gradient
/// g_n from activation n (full-size, `bytes`, in `backward_ns`; there is no separate loss
/// tensor), then the mirrored backward: gradient i - 1 from gradient i and activation
/// i - 1, in `backward_ns`, releasing each activation and gradient after its last use (as
/// autograd does). Lines are JSON Lines, ready for parse_replay_log.
[[nodiscard]] std::string uniform_chain_log(std::size_t n, std::size_t bytes,
                                            double forward_ns = 1000, double backward_ns = 2000);

}  // namespace memento::replay
