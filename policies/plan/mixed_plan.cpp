#include "policies/plan/mixed_plan.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "memento/error.hpp"
#include "policies/plan/chain_dp.hpp"

namespace memento::plan {
namespace {

/// Seconds of kernels on the target's rates; without rates (a plan for a budget alone),
/// 1 TFLOP/s and 1 TB/s: only the ratios between the kernels matter then.
double seconds(const std::vector<KernelCost>& kernels, const PlanTarget& t) {
  const auto rate = [](double r) { return r > 0 ? r : 1e12; };
  double sum = 0;
  for (const KernelCost& k : kernels)
    sum +=
        roofline_seconds(k, rate(t.matrix_flops), rate(t.vector_flops), rate(t.memory_bandwidth));
  return sum;
}

/// The roles a block may drop alone, cheapest per byte first, with running sums.
struct Droppable {
  std::vector<std::string> names;
  std::vector<double> bytes{0};    // bytes[k]: of the first k
  std::vector<double> seconds{0};  // seconds[k]: recomputing the first k
};

Droppable droppable_roles(const ChainShape& shape, const PlanTarget& t) {
  struct Role {
    std::string name;
    double bytes, seconds;
  };
  std::vector<Role> roles;
  for (const BlockRole& r : shape.roles)
    if (!r.recompute.empty() && r.bytes > 0)
      roles.push_back({r.name, r.bytes, seconds(r.recompute, t)});
  std::stable_sort(roles.begin(), roles.end(), [](const Role& x, const Role& y) {
    return x.seconds / x.bytes < y.seconds / y.bytes;
  });
  Droppable d;
  for (const Role& r : roles) {
    d.names.push_back(r.name);
    d.bytes.push_back(d.bytes.back() + r.bytes);
    d.seconds.push_back(d.seconds.back() + r.seconds);
  }
  return d;
}

/// One chunk's logits (all of them when the head is not chunked).
double logits_chunk(const ChainShape& shape) {
  return shape.head_chunks > 0 ? shape.head_logits_bytes / shape.head_chunks
                               : shape.head_logits_bytes;
}

std::vector<std::string> first(const std::vector<std::string>& names, std::size_t k) {
  return {names.begin(), names.begin() + static_cast<std::ptrdiff_t>(k)};
}

class MixedPlan final : public Plan {
 public:
  MixedPlan(MixedSolution s, std::string how, std::string name = "mixed")
      : s_(std::move(s)), how_(std::move(how)), name_(std::move(name)) {}
  std::string name() const override { return name_; }
  PlanAction at_release(const TensorTag& tag) const override {
    if (tag.block < 0 || static_cast<std::size_t>(tag.block) >= s_.blocks.size())
      return tag.role == "logits" && s_.discard_logits ? PlanAction::discard : PlanAction::keep;
    const auto in = [&](const std::vector<std::string>& roles) {
      return std::find(roles.begin(), roles.end(), tag.role) != roles.end();
    };
    switch (s_.blocks[static_cast<std::size_t>(tag.block)]) {
      case MixedState::keep:
        return PlanAction::keep;
      case MixedState::selective:
        return in(s_.selective_drops) ? PlanAction::discard : PlanAction::keep;
      case MixedState::offload:
        return in(s_.offload_drops) ? PlanAction::discard : PlanAction::offload;
      case MixedState::checkpoint:
        return tag.role == "input" ? PlanAction::keep : PlanAction::discard;
      case MixedState::discard:
        return PlanAction::discard;
    }
    return PlanAction::keep;
  }
  std::string describe() const override {
    std::vector<std::string> parts;
    // "3 blocks (0..1, 5)": the blocks in a state, as runs of consecutive blocks.
    const auto range = [&](MixedState st, const char* what, std::string detail) {
      std::vector<std::string> runs;
      int count = 0;
      for (std::size_t i = 0; i < s_.blocks.size(); ++i) {
        if (s_.blocks[i] != st) continue;
        std::size_t end = i;
        while (end + 1 < s_.blocks.size() && s_.blocks[end + 1] == st) ++end;
        runs.push_back(end == i ? fmt::format("{}", i) : fmt::format("{}..{}", i, end));
        count += static_cast<int>(end - i + 1);
        i = end;
      }
      if (count == 0) return;
      const std::string where = count == 1
                                    ? fmt::format("block {}", runs[0])
                                    : fmt::format("{} blocks ({})", count, fmt::join(runs, ", "));
      parts.push_back(fmt::format("{} {}{}", where, what, detail));
    };
    const auto drops = [](const std::vector<std::string>& roles) {
      return roles.empty() ? std::string()
                           : fmt::format(" ({} recomputed)", fmt::join(roles, ", "));
    };
    range(MixedState::offload, "offloaded", drops(s_.offload_drops));
    range(MixedState::discard, "recomputed from a checkpoint", "");
    range(MixedState::checkpoint, "checkpointed", "");
    range(MixedState::selective, "selective", drops(s_.selective_drops));
    range(MixedState::keep, "kept", "");
    if (s_.discard_logits) parts.push_back("logits recomputed chunk by chunk");
    return fmt::format("{}; {}", fmt::join(parts, ", "), how_);
  }

 private:
  MixedSolution s_;
  std::string how_;
  std::string name_;
};

/// What the blocks may use beside the rest of the fixed part: the budget less the margin,
/// the parameters and what the trainer holds (fixed_bytes without the logits and their
/// chunk of gradient, which exist only around the head). Infinite without a budget.
double block_limit(const ChainShape& shape, const PlanTarget& target) {
  return target.budget_bytes > 0 ? chain_limit(shape, target.budget_bytes) + shape.backward_bytes +
                                       shape.head_logits_bytes + logits_chunk(shape)
                                 : INFINITY;
}

/// The peak of the memory model (see mixed_plan.hpp): at the head, or as the last block
/// (`last` bytes of the `resident` ones) runs or is restored whole.
double model_peak(const ChainShape& shape, double resident, double last, double head_bytes,
                  double in_flight_bytes) {
  const double whole = shape.input_bytes + shape.saved_bytes;
  return std::max(resident + head_bytes,
                  resident - last + whole + std::max(shape.backward_bytes, in_flight_bytes));
}

}  // namespace

std::optional<MixedSolution> solve_mixed(const ChainShape& shape, const PlanTarget& target) {
  MEMENTO_EXPECTS(shape.blocks > 0, "solve_mixed: the chain has no blocks");
  const int L = shape.blocks;
  const double a = shape.input_bytes, s = shape.saved_bytes;
  // A checkpoint's recompute, and a block's whole forward (the windows for copies).
  const double t_block = shape.recompute_kernels.empty()
                             ? seconds({KernelCost{shape.block_flops, 0, true}}, target)
                             : seconds(shape.recompute_kernels, target);
  const double t_forward =
      shape.block_kernels.empty() ? t_block : seconds(shape.block_kernels, target);
  const Droppable drop = droppable_roles(shape, target);
  const std::size_t R = drop.names.size();
  const double logits = shape.head_logits_bytes, chunk = logits_chunk(shape);
  const double base = block_limit(shape, target);
  const double link = target.link_bytes_per_s;
  const double host = target.host_bytes * kMixedHostShare;

  std::optional<MixedSolution> best;
  std::vector<int> counts;  // keep, selective, offload, checkpoint of the best
  for (int head = 0; head < (logits > 0 ? 2 : 1); ++head) {
    // At the head: every chunk's logits and one chunk's gradient, or with the logits
    // discarded one chunk recomputed and its gradient.
    const double head_bytes = head ? 2 * chunk : logits + chunk;
    const double head_seconds = head ? seconds(shape.head_recompute, target) : 0;
    for (std::size_t ko = 0; ko <= R; ++ko) {
      const double off_block = a + s - drop.bytes[ko];  // copied per offloaded block
      // Blocks whose copies are still leaving as the forward goes on (each holds its memory
      // until its copy is done): one block's copy against one block's forward.
      const double in_flight =
          link > 0 ? std::max(1.0, std::ceil(off_block / link / t_forward)) : 1.0;
      for (int n_off = 0; n_off <= L; ++n_off) {
        const double copied = n_off * off_block;
        if (n_off > 0) {
          if (link <= 0 || copied > host) break;
          const double out_window = kMixedLinkShare * L * t_forward;
          const double back_window = kMixedLinkShare * 2 * (L - n_off) * t_forward;
          if (copied / link > std::min(out_window, back_window)) break;
        }
        // A selective block drops at least one role (dropping none is keeping it).
        for (std::size_t ks = R > 0 ? 1 : 0; ks <= R; ++ks) {
          const double sel_block = a + s - drop.bytes[ks];
          for (int n_keep = 0; n_keep + n_off <= L; ++n_keep) {
            for (int n_sel = 0; n_keep + n_off + n_sel <= L && (ks > 0 || n_sel == 0); ++n_sel) {
              const int n_ck = L - n_keep - n_off - n_sel;
              // At the head every block's share is resident with the head's bytes; as block
              // L-1 runs (forward) or is restored (backward), all but its own, plus the
              // whole block, plus in the backward the gradient buffers, in the forward the
              // copies in flight.
              const double resident = n_keep * (a + s) + n_sel * sel_block + n_ck * a;
              const double last = n_keep > 0 ? a + s : n_sel > 0 ? sel_block : n_ck > 0 ? a : 0;
              const double peak = model_peak(shape, resident, last, head_bytes,
                                             std::min<double>(n_off, in_flight) * off_block);
              if (peak > base) break;  // more selective blocks only add memory
              const double extra = n_sel * drop.seconds[ks] + n_off * drop.seconds[ko] +
                                   n_ck * t_block + head_seconds;
              if (best && extra >= best->extra_seconds) continue;
              best = MixedSolution{
                  {}, first(drop.names, ks), first(drop.names, ko), head == 1, extra, peak, copied};
              counts = {n_keep, n_sel, n_off, n_ck};
            }
          }
        }
      }
    }
  }
  if (!best) return std::nullopt;
  // Offloaded blocks first (the longest windows for their copies), then checkpoints, then
  // selective blocks, the kept ones last.
  for (auto [state, n] :
       {std::pair{MixedState::offload, counts[2]}, std::pair{MixedState::checkpoint, counts[3]},
        std::pair{MixedState::selective, counts[1]}, std::pair{MixedState::keep, counts[0]}})
    best->blocks.insert(best->blocks.end(), static_cast<std::size_t>(n), state);
  if (std::none_of(best->blocks.begin(), best->blocks.end(),
                   [](MixedState st) { return st == MixedState::selective; }))
    best->selective_drops.clear();
  if (std::none_of(best->blocks.begin(), best->blocks.end(),
                   [](MixedState st) { return st == MixedState::offload; }))
    best->offload_drops.clear();
  return best;
}

std::optional<MixedSolution> solve_selective(const ChainShape& shape, const PlanTarget& target) {
  MEMENTO_EXPECTS(shape.blocks > 0, "solve_selective: the chain has no blocks");
  const Droppable drop = droppable_roles(shape, target);
  if (drop.names.empty()) return std::nullopt;
  const double whole = shape.input_bytes + shape.saved_bytes;
  const double base = block_limit(shape, target);
  const double head_bytes = shape.head_logits_bytes + logits_chunk(shape);
  std::size_t k = 1;
  double peak = 0;
  for (;; ++k) {
    const double block = whole - drop.bytes[k];
    peak = model_peak(shape, shape.blocks * block, block, head_bytes, 0);
    if (peak <= base || k == drop.names.size()) break;
  }
  MixedSolution s;
  s.blocks.assign(static_cast<std::size_t>(shape.blocks), MixedState::selective);
  s.selective_drops = first(drop.names, k);
  s.extra_seconds = shape.blocks * drop.seconds[k];
  s.peak_bytes = peak;
  return s;
}

std::unique_ptr<Plan> make_selective_plan(const ChainShape& shape, const PlanTarget& target) {
  const std::optional<MixedSolution> s = solve_selective(shape, target);
  if (!s) return nullptr;
  const bool fits = s->peak_bytes <= block_limit(shape, target);
  const char* why = target.budget_bytes <= 0 ? "no budget: the cheapest role per byte alone"
                    : fits ? "the fewest of the cheapest roles per byte that fit the budget"
                           : "every role that can be recomputed, and still over the budget";
  return std::make_unique<MixedPlan>(
      *s,
      fmt::format("{}; estimated +{:.3g} s a step, {:.3g} GiB at the peak beside the weights", why,
                  s->extra_seconds, s->peak_bytes / (1 << 30)),
      "selective");
}

std::unique_ptr<Plan> make_mixed_plan(MixedSolution solution, std::string how) {
  return std::make_unique<MixedPlan>(std::move(solution), std::move(how));
}

std::unique_ptr<Plan> make_mixed_plan(const ChainShape& shape, const PlanTarget& target) {
  if (std::optional<MixedSolution> s = solve_mixed(shape, target))
    return std::make_unique<MixedPlan>(
        *s, fmt::format("estimated +{:.3g} s a step, {:.3g} GiB at the peak beside the weights{}",
                        s->extra_seconds, s->peak_bytes / (1 << 30),
                        s->offload_bytes > 0
                            ? fmt::format(", {:.3g} GiB offloaded", s->offload_bytes / (1 << 30))
                            : ""));
  // Nothing of those fits: the optimal programme's longer segments, with the logits
  // discarded, or every block checkpointed when even that does not fit (the dynamic policy
  // and OutOfMemory's figures say the rest).
  const std::optional<ChainSolution> chain =
      solve_chain(uniform_chain(shape), chain_limit(shape, target.budget_bytes) +
                                            shape.head_logits_bytes - logits_chunk(shape));
  MixedSolution s;
  s.discard_logits = shape.head_logits_bytes > 0;
  for (int i = 0; i < shape.blocks; ++i) {
    const BlockState st =
        chain ? chain->states[static_cast<std::size_t>(i)] : BlockState::segment_start;
    s.blocks.push_back(st == BlockState::kept            ? MixedState::keep
                       : st == BlockState::segment_start ? MixedState::checkpoint
                                                         : MixedState::discard);
  }
  return std::make_unique<MixedPlan>(
      s, chain ? "no mix of single-block states fits: the optimal chain's segments"
               : "nothing fits: every block checkpointed");
}

}  // namespace memento::plan
