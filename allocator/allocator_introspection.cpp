// Statistics and snapshots of the caching allocator.
#include <fmt/format.h>

#include <algorithm>

#include "allocator/allocator_impl.hpp"
#include "common/log.hpp"
#include "memento/bytes.hpp"
#include "memento/error.hpp"

namespace memento {

AllocatorStats CachingAllocator::Impl::stats() const {
  std::lock_guard lock(mutex_);
  AllocatorStats s = stats_;
  // Free memory in address runs: adjacent free blocks not yet coalesced count as one piece.
  s.free_bytes = 0;
  s.largest_free_block = 0;
  for (const auto& seg : segments_) {
    std::size_t run = 0;
    for (const Block* b = seg->first; b != nullptr; b = b->next) {
      if (b->allocated || b->pending) {
        run = 0;
        continue;
      }
      s.free_bytes += b->size;
      run += b->size;
      s.largest_free_block = std::max(s.largest_free_block, run);
    }
  }
  return s;
}

std::size_t CachingAllocator::Impl::active_bytes() const {
  std::lock_guard lock(mutex_);
  return stats_.active.current;
}

std::size_t CachingAllocator::Impl::take_allocated_peak() {
  std::lock_guard lock(mutex_);
  const std::size_t peak = std::max(window_peak_, stats_.allocated.current);
  window_peak_ = stats_.allocated.current;
  return peak;
}

void CachingAllocator::Impl::reset_peaks() {
  std::lock_guard lock(mutex_);
  for (StatCounter* c : {&stats_.allocated, &stats_.requested, &stats_.reserved, &stats_.active,
                         &stats_.segments, &stats_.live_blocks})
    c->peak = c->current;
}

std::vector<SegmentSnapshot> CachingAllocator::Impl::snapshot() const {
  std::lock_guard lock(mutex_);
  std::vector<SegmentSnapshot> out;
  out.reserve(segments_.size());
  for (const auto& seg : segments_) {
    SegmentSnapshot s{reinterpret_cast<std::uintptr_t>(seg->base), seg->size, seg->small, {}};
    for (const Block* b = seg->first; b != nullptr; b = b->next)
      s.blocks.push_back({reinterpret_cast<std::uintptr_t>(b->ptr), b->size, b->requested,
                          b->stream.id, b->allocated, b->pending});
    out.push_back(std::move(s));
  }
  std::sort(out.begin(), out.end(),
            [](const auto& a, const auto& b) { return a.address < b.address; });
  return out;
}

}  // namespace memento
