// dtr: the heuristic of Dynamic Tensor Rematerialization (Kirisame et al., ICLR 2021).
// Evict the tensor with the smallest h = cost / (bytes * staleness): cheap to bring back,
// large, and long unused.
//
// The cost is the paper's neighbourhood cost on the recompute side: the tensor's own compute
// plus that of the discarded tensors its recompute would have to recompute first
// (evicted_inputs_seconds, from the runtime). The paper's e*(t) also counts evicted
// dependents that evicting t would make dearer; the registry keeps no reverse edges, so
// those are left out.
#include <algorithm>
#include <memory>
#include <string>

#include "policies/policies.hpp"

namespace memento {
namespace {

class DtrPolicy final : public Policy {
 public:
  std::string name() const override { return "dtr"; }
  double score(const EvictionCandidate& c, const PolicyContext& ctx) const override {
    // Staleness at least 1: a tensor used this very tick must not divide by zero.
    const double stale = std::max(1.0, detail::staleness(c, ctx));
    const double bytes = std::max(1.0, static_cast<double>(c.bytes));
    return -((c.recompute_seconds + c.evicted_inputs_seconds) / (bytes * stale));
  }
  // Discard what can be recomputed (the cost h models); offload the rest.
  EvictAction action(const EvictionCandidate& c, const PolicyContext&) const override {
    return c.has_recipe ? EvictAction::discard : EvictAction::offload;
  }
};

}  // namespace

std::unique_ptr<Policy> make_dtr_policy() { return std::make_unique<DtrPolicy>(); }

}  // namespace memento
