// recompute: always discard, never touch the host link. Prefers tensors that free many bytes,
// are stale and are cheap to recompute.
#include <algorithm>
#include <memory>
#include <string>

#include "policies/policies.hpp"

namespace memento {
namespace {

class RecomputePolicy final : public Policy {
 public:
  std::string name() const override { return "recompute"; }
  double score(const EvictionCandidate& c, const PolicyContext& ctx) const override {
    // Without a recipe a tensor cannot be discarded; rank it below every discardable one
    // (whose scores are >= 0) so it is chosen only when nothing else is left.
    if (!c.has_recipe) return -1.0;
    // The floor keeps free (or unmeasured) ops finite and still ahead of costly ones.
    return detail::staleness(c, ctx) * static_cast<double>(c.bytes) /
           std::max(c.recompute_seconds, 1e-9);
  }
  // Always discard: for a tensor without a recipe the runtime falls back to offloading.
  EvictAction action(const EvictionCandidate&, const PolicyContext&) const override {
    return EvictAction::discard;
  }
};

}  // namespace

std::unique_ptr<Policy> make_recompute_policy() { return std::make_unique<RecomputePolicy>(); }

}  // namespace memento
