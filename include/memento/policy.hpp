// Eviction policies: under memory pressure the runtime asks the active policy to rank the
// evictable tensors and to say, per tensor, whether to discard it (recompute on use) or
// offload it (copy to pinned host memory, prefetch on use).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "memento/residency.hpp"

namespace memento {

struct TrackedTensor;

enum class EvictAction : std::uint8_t { discard, offload };

[[nodiscard]] const char* to_string(EvictAction action) noexcept;

/// What a policy may look at besides the tensor itself.
struct PolicyContext {
  std::uint64_t now = 0;            ///< the registry's logical clock
  double d2h_bandwidth = 0;         ///< bytes/s device to host (0: unknown)
  double h2d_bandwidth = 0;         ///< bytes/s host to device (0: unknown)
  bool host_pool_available = true;  ///< false: offloading is impossible (no pool or full)
  /// Seconds the compute stream stalled on copies per offload, measured in the last step
  /// that offloaded (0: none measured). Captures what per-tensor estimates miss: copies
  /// queueing behind each other on a saturated link.
  double stall_per_offload = 0;
};

class Policy {
 public:
  virtual ~Policy() = default;
  [[nodiscard]] virtual std::string name() const = 0;
  /// Eviction priority: the candidate with the highest score is evicted first.
  [[nodiscard]] virtual double score(const TrackedTensor& t, const PolicyContext& ctx) const = 0;
  /// How to evict `t`. The runtime falls back to the other action when this one is
  /// impossible (no recipe to discard; no host memory to offload).
  [[nodiscard]] virtual EvictAction action(const TrackedTensor& t,
                                           const PolicyContext& ctx) const = 0;
};

/// The policy with this name; ConfigError listing the valid names otherwise.
[[nodiscard]] std::unique_ptr<Policy> make_policy(std::string_view name);
/// Every policy name make_policy accepts.
[[nodiscard]] std::vector<std::string> policy_names();

}  // namespace memento
