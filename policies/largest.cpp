// largest: evict the biggest tensor; frees the most memory per eviction, so the fewest
// evictions (and later restores) satisfy a given request.
#include <memory>
#include <string>

#include "policies/policies.hpp"

namespace memento {
namespace {

class LargestPolicy final : public Policy {
 public:
  std::string name() const override { return "largest"; }
  double score(const EvictionCandidate& c, const PolicyContext&) const override {
    return static_cast<double>(c.bytes);
  }
  EvictAction action(const EvictionCandidate&, const PolicyContext& ctx) const override {
    return detail::prefer_offload(ctx);
  }
};

}  // namespace

std::unique_ptr<Policy> make_largest_policy() { return std::make_unique<LargestPolicy>(); }

}  // namespace memento
