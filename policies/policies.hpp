// Factories for the built-in eviction policies, and the small pieces several of them share.
// Only the registry (make_policy) and tests include this; everyone else goes by name.
// Policies see tensors through memento/policy.hpp's EvictionCandidate only: nothing here or
// in policies/*.cpp may include the runtime's private headers (src/runtime).
#pragma once

#include <cstdint>
#include <limits>
#include <memory>

#include "memento/policy.hpp"

namespace memento {

[[nodiscard]] std::unique_ptr<Policy> make_lru_policy();
[[nodiscard]] std::unique_ptr<Policy> make_largest_policy();
[[nodiscard]] std::unique_ptr<Policy> make_recompute_policy();
[[nodiscard]] std::unique_ptr<Policy> make_offload_policy();
[[nodiscard]] std::unique_ptr<Policy> make_dtr_policy();
[[nodiscard]] std::unique_ptr<Policy> make_capuchin_policy();
[[nodiscard]] std::unique_ptr<Policy> make_auto_policy();

namespace detail {

/// Logical time since the tensor's last use. Clamped at 0 so a tensor touched "after" the
/// context's snapshot of the clock never wraps around to a huge staleness.
[[nodiscard]] inline double staleness(const EvictionCandidate& c,
                                      const PolicyContext& ctx) noexcept {
  return ctx.now > c.last_access ? static_cast<double>(ctx.now - c.last_access) : 0.0;
}

/// Offload when host memory is there: a copy costs link bandwidth but no compute, and it is
/// hidden behind compute when bandwidth allows. Without host memory, discarding is the only
/// option left (the runtime refuses it for tensors without a recipe).
[[nodiscard]] inline EvictAction prefer_offload(const PolicyContext& ctx) noexcept {
  return ctx.host_pool_available ? EvictAction::offload : EvictAction::discard;
}

/// Seconds to copy the tensor to host and back (offload + prefetch). +infinity when it
/// cannot be offloaded (no host pool) or the link speed is unknown (a zero bandwidth): no
/// estimate can then promise the copy is hidden or cheap.
[[nodiscard]] inline double round_trip_seconds(const EvictionCandidate& c,
                                               const PolicyContext& ctx) noexcept {
  if (!ctx.host_pool_available || ctx.d2h_bandwidth <= 0 || ctx.h2d_bandwidth <= 0) {
    return std::numeric_limits<double>::infinity();
  }
  const auto bytes = static_cast<double>(c.bytes);
  return bytes / ctx.d2h_bandwidth + bytes / ctx.h2d_bandwidth;
}

}  // namespace detail
}  // namespace memento
