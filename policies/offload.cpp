// offload: always copy to host, never spend compute on recomputation; ranks like lru.
#include <memory>
#include <string>

#include "policies/policies.hpp"

namespace memento {
namespace {

class OffloadPolicy final : public Policy {
 public:
  std::string name() const override { return "offload"; }
  double score(const EvictionCandidate& c, const PolicyContext& ctx) const override {
    return detail::staleness(c, ctx);
  }
  // Always offload: when the host pool is exhausted the runtime falls back to discarding.
  EvictAction action(const EvictionCandidate&, const PolicyContext&) const override {
    return EvictAction::offload;
  }
};

}  // namespace

std::unique_ptr<Policy> make_offload_policy() { return std::make_unique<OffloadPolicy>(); }

}  // namespace memento
