// lru: evict the tensor unused for the longest time; it is the least likely to be needed soon.
// Offloads when host memory is there (costs no compute; hidden when bandwidth allows), else
// discards (see detail::prefer_offload).
#include <memory>
#include <string>

#include "policies/policies.hpp"

namespace memento {
namespace {

class LruPolicy final : public Policy {
 public:
  std::string name() const override { return "lru"; }
  double score(const EvictionCandidate& c, const PolicyContext& ctx) const override {
    return detail::staleness(c, ctx);
  }
  EvictAction action(const EvictionCandidate&, const PolicyContext& ctx) const override {
    return detail::prefer_offload(ctx);
  }
};

}  // namespace

std::unique_ptr<Policy> make_lru_policy() { return std::make_unique<LruPolicy>(); }

}  // namespace memento
