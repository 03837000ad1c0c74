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
  double score(const TrackedTensor& t, const PolicyContext& ctx) const override {
    // Without a recipe a tensor cannot be discarded; rank it below every discardable one
    // (whose scores are >= 0) so it is chosen only when nothing else is left.
    if (!t.desc.recipe) return -1.0;
    // The floor keeps free (or unmeasured) ops finite and still ahead of costly ones.
    return detail::staleness(t, ctx) * static_cast<double>(t.desc.bytes) /
           std::max(t.desc.compute_seconds, 1e-9);
  }
  // Always discard: for a tensor without a recipe the runtime falls back to offloading.
  EvictAction action(const TrackedTensor&, const PolicyContext&) const override {
    return EvictAction::discard;
  }
};

}  // namespace

std::unique_ptr<Policy> make_recompute_policy() { return std::make_unique<RecomputePolicy>(); }

}  // namespace memento
