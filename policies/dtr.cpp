// dtr: the heuristic of Dynamic Tensor Rematerialization (Kirisame et al., ICLR 2021).
// Evict the tensor with the smallest h = cost / (bytes * staleness): cheap to bring back,
// large, and long unused.
//
// The paper's full cost also adds the compute of the evicted neighbourhood (discarded
// tensors a recompute of this one would have to recompute first). A TrackedTensor alone
// does not show that; the runtime may pass it in later. Until then this is DTR's h_local.
#include <algorithm>
#include <memory>
#include <string>

#include "policies/policies.hpp"

namespace memento {
namespace {

class DtrPolicy final : public Policy {
 public:
  std::string name() const override { return "dtr"; }
  double score(const TrackedTensor& t, const PolicyContext& ctx) const override {
    // Staleness at least 1: a tensor used this very tick must not divide by zero.
    const double stale = std::max(1.0, detail::staleness(t, ctx));
    const double bytes = std::max(1.0, static_cast<double>(t.desc.bytes));
    return -(t.desc.compute_seconds / (bytes * stale));
  }
  // Discard what can be recomputed (the cost h models); offload the rest.
  EvictAction action(const TrackedTensor& t, const PolicyContext&) const override {
    return t.desc.recipe ? EvictAction::discard : EvictAction::offload;
  }
};

}  // namespace

std::unique_ptr<Policy> make_dtr_policy() { return std::make_unique<DtrPolicy>(); }

}  // namespace memento
