// Eviction policies: under memory pressure the runtime asks the active policy to rank the
// evictable tensors and to say, per tensor, whether to discard it (recompute on use) or
// offload it (copy to pinned host memory, prefetch on use).
//
// A policy sees each tensor through EvictionCandidate, a flat copy of exactly what the
// built-in policies weigh, never the runtime's own records: policies depend on this header
// only, so they can be written, tested and replaced without the runtime's internals, and
// the runtime can change its bookkeeping without touching them. tests/runtime/
// policy_conformance_test.cpp holds every registered policy to the contract below.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "memento/residency.hpp"

namespace memento {

enum class EvictAction : std::uint8_t { discard, offload };

[[nodiscard]] const char* to_string(EvictAction action) noexcept;

/// One evictable tensor as a policy sees it. The runtime fills it on the stack from its
/// records each time it asks (a plain aggregate: no allocation per candidate).
struct EvictionCandidate {
  std::size_t bytes = 0;    ///< device memory an eviction frees (> 0 for registered tensors)
  bool has_recipe = false;  ///< can be discarded and recomputed; else only offloaded
  /// Seconds to rerun the tensor's producer alone (modelled or measured). Kept when the
  /// recipe is dropped (Runtime::forget_recipes_reading), so it may be nonzero without one.
  double recompute_seconds = 0;
  /// Compute seconds of the discarded tensors a recompute would have to rerun first (its
  /// evicted neighbourhood), set by the runtime before it ranks; 0 when there are none.
  double evicted_inputs_seconds = 0;
  /// Seconds of compute expected before the tensor's next use, from the previous step's
  /// access order; negative: unknown. What a copy out and back could hide behind.
  double next_use_seconds = -1;
  /// Tick of the last use on PolicyContext::now's logical clock; staleness is now minus
  /// this (clamped at 0, see detail::staleness in policies/policies.hpp).
  std::uint64_t last_access = 0;
};

/// What a policy may look at besides the candidate itself.
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

/// The contract every policy keeps (checked for each name in policy_names() by the
/// conformance suite): score and action are pure functions of their arguments; a score is
/// never NaN (+-infinity allowed); name() is the name make_policy knows it by.
class Policy {
 public:
  virtual ~Policy() = default;
  [[nodiscard]] virtual std::string name() const = 0;
  /// Eviction priority: the candidate with the highest score is evicted first.
  [[nodiscard]] virtual double score(const EvictionCandidate& c,
                                     const PolicyContext& ctx) const = 0;
  /// How to evict `c`. The runtime falls back to the other action when this one is
  /// impossible (no recipe to discard; no host memory to offload).
  [[nodiscard]] virtual EvictAction action(const EvictionCandidate& c,
                                           const PolicyContext& ctx) const = 0;
};

/// The policy with this name; ConfigError listing the valid names otherwise.
[[nodiscard]] std::unique_ptr<Policy> make_policy(std::string_view name);
/// Every policy name make_policy accepts.
[[nodiscard]] std::vector<std::string> policy_names();

}  // namespace memento
