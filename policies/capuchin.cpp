// capuchin: the policy of Capuchin (Peng et al., ASPLOS 2020). A tensor whose offload and
// prefetch round trip fits in the compute before its next use is offloaded: the copies run
// behind that compute, so evicting it costs nothing. Any other tensor is recomputed when it
// has a recipe (its copy would stall the step), and offloaded only when it has none.
//
// Score, in three tiers so the order never depends on how the numbers happen to compare:
//   1. hideable offloads: kHideableScale * bytes, largest first (free, so free the most);
//   2. recompute candidates: bytes / max(recompute_seconds, 1e-12), memory saved per second
//      of recompute, highest first; always below kHideableScale (see the static_assert);
//   3. neither (no recipe, copy not hideable): -1 / bytes, in (-1, 0), largest first; a
//      stalling copy whose cost this policy does not weigh is the last resort.
// Tier 1 scales rather than offsets: an offset large enough to clear tier 2 (~1e31) would
// swallow the bytes in rounding. A next use that is unknown (negative) is never hideable.
#include <algorithm>
#include <cstddef>
#include <limits>
#include <memory>
#include <string>

#include "policies/policies.hpp"

namespace memento {
namespace {

// The floor keeps free (or unmeasured) ops finite and still ahead of costly ones.
constexpr double kMinComputeSeconds = 1e-12;
constexpr double kHideableScale = 1e32;
static_assert(static_cast<double>(std::numeric_limits<std::size_t>::max()) / kMinComputeSeconds <
                  kHideableScale,
              "every recompute score must stay below the hideable tier");

bool hideable(const EvictionCandidate& c, const PolicyContext& ctx) noexcept {
  // round_trip_seconds is +infinity without a host pool or a known bandwidth: never fits.
  return c.next_use_seconds >= 0 && detail::round_trip_seconds(c, ctx) <= c.next_use_seconds;
}

class CapuchinPolicy final : public Policy {
 public:
  std::string name() const override { return "capuchin"; }
  double score(const EvictionCandidate& c, const PolicyContext& ctx) const override {
    // Bytes at least 1: the registry refuses empty tensors, hand-built ones must not
    // divide by zero or collapse tier 1 onto 0.
    const double bytes = std::max(1.0, static_cast<double>(c.bytes));
    if (hideable(c, ctx)) return kHideableScale * bytes;
    if (c.has_recipe) return bytes / std::max(c.recompute_seconds, kMinComputeSeconds);
    return -1.0 / bytes;
  }
  EvictAction action(const EvictionCandidate& c, const PolicyContext& ctx) const override {
    if (hideable(c, ctx) || !c.has_recipe) return EvictAction::offload;
    return EvictAction::discard;
  }
};

}  // namespace

std::unique_ptr<Policy> make_capuchin_policy() { return std::make_unique<CapuchinPolicy>(); }

}  // namespace memento
