// Budget changes and the pressure path of the caching allocator.
#include <fmt/format.h>

#include <algorithm>

#include "allocator/allocator_impl.hpp"
#include "common/log.hpp"
#include "memento/bytes.hpp"
#include "memento/error.hpp"

namespace memento {

namespace {
// Depth of pressure-handler calls on this thread. A handler that allocates gets no nested
// pressure round (it would recurse), and may not remove handlers (it would wait on itself).
thread_local int t_handler_depth = 0;

struct HandlerDepth {
  HandlerDepth() noexcept { ++t_handler_depth; }
  ~HandlerDepth() { --t_handler_depth; }
  HandlerDepth(const HandlerDepth&) = delete;
  HandlerDepth& operator=(const HandlerDepth&) = delete;
};
}  // namespace

int CachingAllocator::Impl::add_pressure_handler(PressureHandler handler) {
  MEMENTO_EXPECTS(static_cast<bool>(handler), "add_pressure_handler: empty handler");
  std::lock_guard lock(mutex_);
  auto entry = std::make_shared<HandlerEntry>();
  entry->id = next_handler_id_++;
  entry->fn = std::move(handler);
  handlers_.push_back(std::move(entry));
  return handlers_.back()->id;
}

void CachingAllocator::Impl::remove_pressure_handler(int id) {
  MEMENTO_EXPECTS(t_handler_depth == 0,
                  "remove_pressure_handler cannot be called from inside a pressure handler");
  std::unique_lock lock(mutex_);
  auto it =
      std::find_if(handlers_.begin(), handlers_.end(), [id](const auto& h) { return h->id == id; });
  MEMENTO_EXPECTS(it != handlers_.end(),
                  fmt::format("remove_pressure_handler: no handler with id {}", id));
  std::shared_ptr<HandlerEntry> entry = *it;
  handlers_.erase(it);
  // Once this returns the handler is never running nor called again, so its owner may die.
  handler_idle_.wait(lock, [&] { return entry->running == 0; });
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

CachingAllocator::Impl::Block* CachingAllocator::Impl::adopt_on_device(std::size_t size,
                                                                       Stream stream) {
  Block* adopted = nullptr;
  const auto adopt = [&](Block* b) {
    b->pending = false;
    b->stream = stream;
    release_block(b);  // a fresh free sequence number: freed on `stream` from now on
    adopted = b;
  };
  while (fences_.adopt_oldest_pending(stream, adopt)) {
    ++stats_.stream_waits;
    merge_around(adopted);
    if (Block* b = find_or_grow(size, stream)) return b;
  }
  for (Stream other : fences_.streams_with_frees()) {
    if (other == stream) continue;
    std::vector<Block*> blocks;
    for (FreeSet* set : {&small_free_, &large_free_})
      for (Block& b : *set)
        if (b.stream == other) blocks.push_back(&b);
    if (blocks.empty()) continue;
    fences_.wait_on_device(stream, other);
    ++stats_.stream_waits;
    fences_.note_stream(stream);
    for (Block* b : blocks) {
      FreeSet& set = pool(b->segment->small);
      set.erase(set.iterator_to(*b));
      b->stream = stream;
      b->free_seq = ++free_seq_;
      set.insert(*b);
    }
    for (Block* b : blocks) merge_around(b);
    if (Block* b = find_or_grow(size, stream)) return b;
  }
  return nullptr;
}

void CachingAllocator::Impl::merge_around(Block* b) {
  // Absorbed by an earlier merge (recycled: no segment), or not free.
  if (b->segment == nullptr || b->allocated || b->pending) return;
  while (b->prev != nullptr && joins(b->prev, false)) b = b->prev;
  merge_run(b, false);
}

void CachingAllocator::Impl::drain_and_release() {
  ++stats_.stream_syncs;
  fences_.wait_all(free_seq_, [this](Block* b) {
    b->pending = false;
    release_block(b);
  });
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
  coalesce_all_streams();
}

std::size_t CachingAllocator::Impl::call_handlers(std::unique_lock<detail::FutexLock>& lock,
                                                  std::size_t size, Stream stream) {
  if (t_handler_depth > 0) return 0;  // an allocation made by a handler: no nested round
  auto handlers = handlers_;
  std::size_t freed = 0;
  for (const auto& entry : handlers) {
    if (std::find(handlers_.begin(), handlers_.end(), entry) == handlers_.end()) continue;
    ++entry->running;
    ++stats_.pressure_calls;
    lock.unlock();  // handlers free memory through deallocate()
    std::size_t n = 0;
    try {
      HandlerDepth depth;
      n = entry->fn(size, stream);
    } catch (...) {
      lock.lock();
      --entry->running;
      handler_idle_.notify_all();
      throw;
    }
    lock.lock();
    --entry->running;
    handler_idle_.notify_all();
    freed += n;
    if (n >= size) break;
  }
  stats_.pressure_freed += freed;
  return freed;
}

void CachingAllocator::Impl::throw_oom(std::unique_lock<detail::FutexLock>& lock, std::size_t bytes,
                                       Stream stream, std::size_t freed, const char* why) {
  ++stats_.out_of_memory;
  AllocatorStats s = stats_;
  auto probe = evictable_probe_;
  std::size_t cached = s.reserved.current - s.active.current;
  lock.unlock();
  std::size_t evictable = probe ? std::min(probe(), s.allocated.current) : 0;
  // The figures travel as fields (compare reads the shortfall from them); the message is
  // built from the same fields by describe().
  throw OutOfMemory(OomFigures{.device = backend_.info().name,
                               .requested = bytes,
                               .stream = stream.id,
                               .budget = s.budget,
                               .allocated = s.allocated.current,
                               .live_blocks = s.live_blocks.current,
                               .reserved = s.reserved.current,
                               .segments = s.segments.current,
                               .cached = cached,
                               .unevictable = s.allocated.current - evictable,
                               .freed_by_eviction = freed,
                               .reason = why},
                    detail::project_path(__FILE__), __LINE__);
}

}  // namespace memento
