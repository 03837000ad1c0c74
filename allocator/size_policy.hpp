// Size rounding, pool choice and segment sizing. The numbers follow PyTorch's caching
// allocator, whose defaults are tuned on real training workloads.
#pragma once

#include <cstddef>
#include <limits>

namespace memento::sizes {

inline constexpr std::size_t kAlignment = 512;           // block granularity and alignment
inline constexpr std::size_t kSmallRequest = 1u << 20;   // up to 1 MiB: small pool
inline constexpr std::size_t kSmallSegment = 2u << 20;   // small pool segment size
inline constexpr std::size_t kLargeSegment = 20u << 20;  // segment for requests < 10 MiB
inline constexpr std::size_t kMidRequest = 10u << 20;
inline constexpr std::size_t kLargeRounding = 2u << 20;  // larger segments round to 2 MiB
/// Largest request we accept before rounding would overflow.
inline constexpr std::size_t kMaxRequest = std::numeric_limits<std::size_t>::max() / 2;

[[nodiscard]] constexpr std::size_t round_up(std::size_t n, std::size_t to) noexcept {
  return (n + to - 1) / to * to;
}

/// Block size for a request (rounded to the alignment). Requires bytes <= kMaxRequest.
[[nodiscard]] constexpr std::size_t block_size(std::size_t bytes) noexcept {
  return round_up(bytes, kAlignment);
}

[[nodiscard]] constexpr bool is_small(std::size_t block) noexcept { return block <= kSmallRequest; }

/// Preferred segment size for a block of this size.
[[nodiscard]] constexpr std::size_t segment_size(std::size_t block) noexcept {
  if (is_small(block)) return kSmallSegment;
  if (block < kMidRequest) return kLargeSegment;
  return round_up(block, kLargeRounding);
}

/// Whether a free block of `size` serving `request` leaves a remainder worth splitting off.
/// Small requests split off any remainder; large ones only a remainder that could itself
/// serve a large request, so large blocks are not shredded into slivers.
[[nodiscard]] constexpr bool should_split(std::size_t size, std::size_t request) noexcept {
  std::size_t rest = size - request;
  return is_small(request) ? rest >= kAlignment : rest > kSmallRequest;
}

}  // namespace memento::sizes
