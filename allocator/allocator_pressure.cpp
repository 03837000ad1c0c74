// Budget changes and the pressure path of the caching allocator.
#include <fmt/format.h>

#include <algorithm>

#include "allocator/allocator_impl.hpp"
#include "common/log.hpp"
#include "memento/config.hpp"
#include "memento/error.hpp"

namespace memento {

int CachingAllocator::Impl::add_pressure_handler(PressureHandler handler) {
  MEMENTO_EXPECTS(static_cast<bool>(handler), "add_pressure_handler: empty handler");
  std::lock_guard lock(mutex_);
  handlers_.emplace_back(next_handler_id_, std::move(handler));
  return next_handler_id_++;
}

void CachingAllocator::Impl::remove_pressure_handler(int id) {
  std::lock_guard lock(mutex_);
  auto it = std::find_if(handlers_.begin(), handlers_.end(),
                         [id](const auto& h) { return h.first == id; });
  MEMENTO_EXPECTS(it != handlers_.end(),
                  fmt::format("remove_pressure_handler: no handler with id {}", id));
  handlers_.erase(it);
}

void CachingAllocator::Impl::set_evictable_bytes_probe(std::function<std::size_t()> probe) {
  std::lock_guard lock(mutex_);
  evictable_probe_ = std::move(probe);
}

void CachingAllocator::Impl::set_budget(std::size_t bytes) {
  check_budget(bytes);
  std::lock_guard lock(mutex_);
  budget_ = bytes;
  stats_.budget = bytes;
  if (stats_.reserved.current > budget_) drain_and_release();
}

std::size_t CachingAllocator::Impl::budget() const {
  std::lock_guard lock(mutex_);
  return budget_;
}

void CachingAllocator::Impl::release_cached() {
  std::lock_guard lock(mutex_);
  drain_and_release();
}

void CachingAllocator::Impl::drain_and_release() {
  ++stats_.stream_syncs;
  for (Block* b : fences_.wait_all(free_seq_)) {
    b->pending = false;
    release_block(b);
  }
  std::erase_if(segments_, [this](const std::unique_ptr<Segment>& seg) {
    for (const Block* b = seg->first; b != nullptr; b = b->next)
      if (b->allocated || b->pending) return false;
    for (Block* b = seg->first; b != nullptr;) {
      Block* next = b->next;
      pool(seg->small).erase(pool(seg->small).iterator_to(*b));
      recycle(b);
      b = next;
    }
    backend_.free_segment(seg->base, seg->size);
    stats_.reserved.sub(seg->size);
    stats_.segments.sub(1);
    ++stats_.segment_frees;
    return true;
  });
  coalesce(/*any_stream=*/true);
}

std::size_t CachingAllocator::Impl::call_handlers(std::unique_lock<std::mutex>& lock,
                                                  std::size_t size, Stream stream) {
  auto handlers = handlers_;
  if (handlers.empty()) return 0;
  lock.unlock();  // handlers free memory through deallocate()
  std::size_t freed = 0;
  for (auto& [id, handler] : handlers) {
    std::size_t n = handler(size, stream);
    freed += n;
    if (n >= size) break;
  }
  lock.lock();
  stats_.pressure_calls += handlers.size();
  stats_.pressure_freed += freed;
  return freed;
}

void CachingAllocator::Impl::throw_oom(std::unique_lock<std::mutex>& lock, std::size_t bytes,
                                       Stream stream, std::size_t freed, const char* why) {
  ++stats_.out_of_memory;
  AllocatorStats s = stats_;
  auto probe = evictable_probe_;
  std::size_t cached = s.reserved.current - s.active.current;
  lock.unlock();
  std::size_t evictable = probe ? std::min(probe(), s.allocated.current) : 0;
  MEMENTO_FAIL(
      OutOfMemory,
      fmt::format("out of memory on {}: cannot allocate {} ({} bytes) on stream {} within the "
                  "budget of {} ({} bytes): {}. Allocated {} in {} live blocks, reserved {} "
                  "in {} segments ({} cached), unevictable {}; eviction freed {} for this "
                  "request",
                  backend_.info().name, format_bytes(bytes), bytes, stream.id,
                  format_bytes(budget_), budget_, why, format_bytes(s.allocated.current),
                  s.live_blocks.current, format_bytes(s.reserved.current), s.segments.current,
                  format_bytes(cached), format_bytes(s.allocated.current - evictable),
                  format_bytes(freed)));
}

}  // namespace memento
