// auto: the project's default best, a bandwidth-aware hybrid of offloading and recompute.
//
// For each candidate, estimate the seconds each way out would cost the step:
//   offload:   the round trip (offload + prefetch copy) that compute cannot hide,
//              max(0, round_trip - next_use_seconds) when the next use is known, else the
//              whole round trip; +infinity without a host pool or with a zero (unknown)
//              bandwidth, since nothing says the copy would ever finish in time; plus the
//              stall per offload measured in the last step that offloaded, which is what
//              a saturated link adds (copies queue behind each other), so a link that
//              cannot carry the traffic turns offloads into recomputes step by step;
//   recompute: recompute_seconds to rerun the producer, plus the discarded inputs it would
//              have to rerun first (evicted_inputs_seconds); +infinity without a recipe.
// action = the cheaper way; on a tie offload, which spends link time instead of compute.
// score  = bytes / (chosen cost + 1e-9) * (1 + log1p(staleness)): memory freed per second
// lost, so a free eviction of a large tensor goes first; the 1e-9 keeps free ones finite and
// ordered by size. The log-damped staleness factor (1 at staleness 0) breaks near-ties
// toward tensors long unused, without letting age outweigh a real cost difference.
// Higher score = evict first. A tensor with no finite way out scores 0: evicted last.
#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <string>

#include "policies/policies.hpp"

namespace memento {
namespace {

constexpr double kInfinity = std::numeric_limits<double>::infinity();

double offload_cost(const EvictionCandidate& c, const PolicyContext& ctx) noexcept {
  const double round_trip = detail::round_trip_seconds(c, ctx);           // +infinity: impossible
  if (c.next_use_seconds < 0) return round_trip + ctx.stall_per_offload;  // nothing to hide behind
  return std::max(0.0, round_trip - c.next_use_seconds) + ctx.stall_per_offload;
}

double recompute_cost(const EvictionCandidate& c) noexcept {
  // Clamped at 0 so a bogus negative estimate cannot make the score negative.
  return c.has_recipe ? std::max(0.0, c.recompute_seconds + c.evicted_inputs_seconds) : kInfinity;
}

class AutoPolicy final : public Policy {
 public:
  std::string name() const override { return "auto"; }
  double score(const EvictionCandidate& c, const PolicyContext& ctx) const override {
    const double cost = std::min(offload_cost(c, ctx), recompute_cost(c));
    const double staleness_factor = 1.0 + std::log1p(detail::staleness(c, ctx));
    return static_cast<double>(c.bytes) / (cost + 1e-9) * staleness_factor;
  }
  EvictAction action(const EvictionCandidate& c, const PolicyContext& ctx) const override {
    return offload_cost(c, ctx) <= recompute_cost(c) ? EvictAction::offload : EvictAction::discard;
  }
};

}  // namespace

std::unique_ptr<Policy> make_auto_policy() { return std::make_unique<AutoPolicy>(); }

}  // namespace memento
