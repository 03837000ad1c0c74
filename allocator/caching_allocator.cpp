#include "memento/caching_allocator.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <mutex>

#include "allocator/block.hpp"
#include "allocator/size_policy.hpp"
#include "allocator/stream_fences.hpp"
#include "common/log.hpp"
#include "memento/config.hpp"
#include "memento/error.hpp"

namespace memento {

using detail::Block;
using detail::FreeSet;
using detail::Segment;

namespace {
/// Key for best-fit lookups: compares (stream, size) and ignores the address, so
/// lower_bound lands on the smallest block of that stream that is large enough.
struct FitKey {
  std::uint32_t stream;
  std::size_t size;
};
struct FitCompare {
  bool operator()(const Block& b, const FitKey& k) const noexcept {
    return b.stream.id != k.stream ? b.stream.id < k.stream : b.size < k.size;
  }
  bool operator()(const FitKey& k, const Block& b) const noexcept {
    return k.stream != b.stream.id ? k.stream < b.stream.id : k.size < b.size;
  }
};
}  // namespace

class CachingAllocator::Impl {
 public:
  Impl(Backend& backend, AllocatorOptions options) : backend_(backend), fences_(backend) {
    std::size_t capacity = backend.info().capacity;
    budget_ = options.budget == 0 ? capacity : options.budget;
    check_budget(budget_);
    stats_.budget = budget_;
  }

  ~Impl() {
    try {
      backend_.synchronize_all();
    } catch (const std::exception& e) {
      log::error(fmt::format("caching allocator teardown: {}", e.what()));
    }
    if (!live_.empty())
      log::warning(fmt::format("caching allocator destroyed with {} live block(s) ({} bytes)",
                               live_.size(), stats_.allocated.current));
    live_.clear();
    small_free_.clear();
    large_free_.clear();
    fences_.discard_pending();
    for (auto& seg : segments_) backend_.free_segment(seg->base, seg->size);
  }

  void* allocate(std::size_t bytes, Stream stream) {
    if (bytes == 0) return nullptr;
    std::unique_lock lock(mutex_);
    if (bytes > sizes::kMaxRequest || sizes::block_size(bytes) > budget_) {
      throw_oom(lock, bytes, stream, 0, "the request alone exceeds the budget");
    }
    std::size_t size = sizes::block_size(bytes);
    std::size_t freed_by_handlers = 0;
    for (int round = 0;; ++round) {
      if (Block* b = find_or_grow(size, stream)) return take(b, size, bytes, stream);
      // Pressure: wait for in-flight stream work so cached blocks become reusable, give
      // back free segments, and try once more before asking the handlers.
      drain_and_release();
      if (Block* b = find_or_grow(size, stream)) return take(b, size, bytes, stream);
      std::size_t freed = call_handlers(lock, size, stream);
      freed_by_handlers += freed;
      if (freed == 0 || round >= kMaxPressureRounds) {
        throw_oom(lock, bytes, stream, freed_by_handlers,
                  freed == 0 ? "nothing left to evict" : "eviction did not make room");
      }
    }
  }

  void deallocate(void* ptr) {
    if (ptr == nullptr) return;
    std::lock_guard lock(mutex_);
    Block* b = live_block(ptr, "deallocate");
    live_.erase(live_.iterator_to(*b));
    b->allocated = false;
    stats_.allocated.sub(b->size);
    stats_.requested.sub(b->requested);
    stats_.live_blocks.sub(1);
    ++stats_.frees;
    b->requested = 0;
    if (!b->extra_streams.empty()) {
      // Other streams may still read or write it: reusable only once their work is done.
      fences_.add_pending(b, b->extra_streams);
      b->extra_streams.clear();
      b->pending = true;
      return;
    }
    release_block(b);
  }

  void record_stream(void* ptr, Stream stream) {
    std::lock_guard lock(mutex_);
    Block* b = live_block(ptr, "record_stream");
    if (stream == b->stream) return;
    if (std::find(b->extra_streams.begin(), b->extra_streams.end(), stream) ==
        b->extra_streams.end())
      b->extra_streams.push_back(stream);
  }

  std::size_t requested_size(const void* ptr) const {
    std::lock_guard lock(mutex_);
    return live_block(ptr, "requested_size")->requested;
  }

  Stream allocation_stream(const void* ptr) const {
    std::lock_guard lock(mutex_);
    return live_block(ptr, "allocation_stream")->stream;
  }

  int add_pressure_handler(PressureHandler handler) {
    MEMENTO_EXPECTS(static_cast<bool>(handler), "add_pressure_handler: empty handler");
    std::lock_guard lock(mutex_);
    handlers_.emplace_back(next_handler_id_, std::move(handler));
    return next_handler_id_++;
  }

  void remove_pressure_handler(int id) {
    std::lock_guard lock(mutex_);
    auto it = std::find_if(handlers_.begin(), handlers_.end(),
                           [id](const auto& h) { return h.first == id; });
    MEMENTO_EXPECTS(it != handlers_.end(),
                    fmt::format("remove_pressure_handler: no handler with id {}", id));
    handlers_.erase(it);
  }

  void set_evictable_bytes_probe(std::function<std::size_t()> probe) {
    std::lock_guard lock(mutex_);
    evictable_probe_ = std::move(probe);
  }

  void set_budget(std::size_t bytes) {
    check_budget(bytes);
    std::lock_guard lock(mutex_);
    budget_ = bytes;
    stats_.budget = bytes;
    if (stats_.reserved.current > budget_) drain_and_release();
  }

  std::size_t budget() const {
    std::lock_guard lock(mutex_);
    return budget_;
  }

  void release_cached() {
    std::lock_guard lock(mutex_);
    drain_and_release();
  }

  AllocatorStats stats() const {
    std::lock_guard lock(mutex_);
    AllocatorStats s = stats_;
    s.free_bytes = 0;
    s.largest_free_block = 0;
    for (const FreeSet* set : {&small_free_, &large_free_})
      for (const Block& b : *set) {
        s.free_bytes += b.size;
        s.largest_free_block = std::max(s.largest_free_block, b.size);
      }
    return s;
  }

  void reset_peaks() {
    std::lock_guard lock(mutex_);
    for (StatCounter* c : {&stats_.allocated, &stats_.requested, &stats_.reserved, &stats_.active,
                           &stats_.segments, &stats_.live_blocks})
      c->peak = c->current;
  }

  std::vector<SegmentSnapshot> snapshot() const {
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

  Backend& backend() const noexcept { return backend_; }

 private:
  static constexpr int kMaxPressureRounds = 64;

  void check_budget(std::size_t bytes) const {
    std::size_t capacity = backend_.info().capacity;
    MEMENTO_EXPECTS(bytes > 0 && bytes <= capacity,
                    fmt::format("allocator budget {} bytes is not accepted: it must be positive "
                                "and at most the device capacity of {} ({} bytes)",
                                bytes, format_bytes(capacity), capacity));
  }

  FreeSet& pool(bool small) noexcept { return small ? small_free_ : large_free_; }

  Block* find_or_grow(std::size_t size, Stream stream) {
    bool small = sizes::is_small(size);
    FreeSet& set = pool(small);
    if (Block* b = best_fit(set, stream, size)) {
      ++stats_.cache_hits;
      return b;
    }
    // Blocks freed while another stream still used them may be ready now.
    for (Block* b : fences_.collect_completed()) {
      b->pending = false;
      release_block(b);
    }
    if (Block* b = best_fit(set, stream, size)) {
      ++stats_.cache_hits;
      return b;
    }
    if (Block* b = other_stream_fit(set, stream, size)) {
      ++stats_.cache_hits;
      ++stats_.cross_stream_reuses;
      return b;
    }
    if (Block* b = grow(size, stream, small)) return b;
    // No room for a new small segment: carve the small request out of cached large blocks
    // rather than fail while free memory sits in the large pool.
    if (small) {
      if (Block* b = best_fit(large_free_, stream, size)) return b;
      if (Block* b = other_stream_fit(large_free_, stream, size)) return b;
    }
    return nullptr;
  }

  Block* best_fit(FreeSet& set, Stream stream, std::size_t size) {
    auto it = set.lower_bound(FitKey{stream.id, size}, FitCompare{});
    if (it == set.end() || it->stream != stream) return nullptr;
    Block* b = &*it;
    set.erase(it);
    return b;
  }

  /// The smallest fitting block freed on another stream whose work is known to be done.
  /// Blocks whose stream has not been fenced since their free get a fence now, so a later
  /// call can use them; the pressure path waits for fences instead.
  Block* other_stream_fit(FreeSet& set, Stream stream, std::size_t size) {
    Block* best = nullptr;
    for (Stream other : fences_.streams_with_frees()) {
      if (other == stream) continue;
      std::uint64_t safe = fences_.safe_seq(other);
      bool needs_fence = false;
      for (auto it = set.lower_bound(FitKey{other.id, size}, FitCompare{});
           it != set.end() && it->stream == other; ++it) {
        if (it->free_seq <= safe) {
          if (best == nullptr || it->size < best->size) best = &*it;
          break;
        }
        needs_fence = true;
      }
      if (needs_fence) fences_.request_fence(other, free_seq_);
    }
    if (best != nullptr) {
      set.erase(set.iterator_to(*best));
    }
    return best;
  }

  Block* grow(std::size_t size, Stream stream, bool small) {
    std::size_t preferred = sizes::segment_size(size);
    std::size_t fallback = small ? size : sizes::round_up(size, sizes::kLargeRounding);
    for (std::size_t seg_size : {preferred, fallback, size}) {
      if (seg_size < size || seg_size > budget_ - std::min(budget_, stats_.reserved.current))
        continue;
      void* base = backend_.allocate_segment(seg_size);
      if (base == nullptr) continue;
      auto seg = std::make_unique<Segment>();
      seg->base = static_cast<char*>(base);
      seg->size = seg_size;
      seg->small = small;
      Block* b = new_block();
      b->ptr = seg->base;
      b->size = seg_size;
      b->segment = seg.get();
      b->stream = stream;
      seg->first = b;
      segments_.push_back(std::move(seg));
      stats_.reserved.add(seg_size);
      stats_.segments.add(1);
      ++stats_.segment_allocs;
      return b;
    }
    return nullptr;
  }

  /// Hands out `b` (already out of its free set), splitting off the remainder.
  void* take(Block* b, std::size_t size, std::size_t requested, Stream stream) {
    if (sizes::should_split(b->size, size)) {
      Block* rest = new_block();
      rest->ptr = b->ptr + size;
      rest->size = b->size - size;
      rest->segment = b->segment;
      rest->stream = b->stream;  // the remainder keeps its stream-ordering history
      rest->free_seq = b->free_seq;
      rest->prev = b;
      rest->next = b->next;
      if (b->next != nullptr) b->next->prev = rest;
      b->next = rest;
      b->size = size;
      pool(b->segment->small).insert(*rest);
    }
    b->allocated = true;
    b->stream = stream;
    b->requested = requested;
    live_.insert(*b);
    stats_.allocated.add(b->size);
    stats_.requested.add(requested);
    stats_.active.add(b->size);
    stats_.live_blocks.add(1);
    ++stats_.allocations;
    return b->ptr;
  }

  /// A freed block becomes reusable: stamp it, coalesce with free same-stream neighbours.
  void release_block(Block* b) {
    stats_.active.sub(b->size);
    b->free_seq = ++free_seq_;
    fences_.note_free(b->stream);
    FreeSet& set = pool(b->segment->small);
    auto mergeable = [b](const Block* n) {
      return n != nullptr && !n->allocated && !n->pending && n->stream == b->stream;
    };
    if (mergeable(b->next)) {
      Block* n = b->next;
      set.erase(set.iterator_to(*n));
      b->size += n->size;
      b->free_seq = std::max(b->free_seq, n->free_seq);
      unlink(n);
    }
    if (mergeable(b->prev)) {
      Block* p = b->prev;
      set.erase(set.iterator_to(*p));
      p->size += b->size;
      p->free_seq = std::max(p->free_seq, b->free_seq);
      unlink(b);
      b = p;
    }
    set.insert(*b);
  }

  /// Removes `n` from its segment's chain (its predecessor has absorbed it).
  void unlink(Block* n) {
    if (n->prev != nullptr) n->prev->next = n->next;
    if (n->next != nullptr) n->next->prev = n->prev;
    recycle(n);
  }

  void drain_and_release() {
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
  }

  std::size_t call_handlers(std::unique_lock<std::mutex>& lock, std::size_t size, Stream stream) {
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

  [[noreturn]] void throw_oom(std::unique_lock<std::mutex>& lock, std::size_t bytes, Stream stream,
                              std::size_t freed, const char* why) {
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

  Block* live_block(const void* ptr, const char* what) const {
    auto it = live_.find(static_cast<const char*>(ptr), detail::AddressKey{});
    if (it != live_.end()) return const_cast<Block*>(&*it);
    bool inside = std::any_of(segments_.begin(), segments_.end(), [ptr](const auto& seg) {
      auto p = static_cast<const char*>(ptr);
      return p >= seg->base && p < seg->base + seg->size;
    });
    MEMENTO_FAIL(LogicError,
                 fmt::format("{}({}): not a live allocation of this allocator ({})", what, ptr,
                             inside ? "double free, or a pointer into the middle of a block"
                                    : "foreign pointer: not in any segment"));
  }

  Block* new_block() {
    if (spare_blocks_.empty()) {
      storage_.push_back(std::make_unique<Block>());
      return storage_.back().get();
    }
    Block* b = spare_blocks_.back();
    spare_blocks_.pop_back();
    return b;
  }

  void recycle(Block* b) {
    *b = Block{};
    spare_blocks_.push_back(b);
  }

  Backend& backend_;
  mutable std::mutex mutex_;
  std::size_t budget_ = 0;
  FreeSet small_free_;
  FreeSet large_free_;
  detail::LiveSet live_;
  std::vector<std::unique_ptr<Segment>> segments_;
  std::vector<std::unique_ptr<Block>> storage_;
  std::vector<Block*> spare_blocks_;
  detail::StreamFences fences_;
  std::uint64_t free_seq_ = 0;
  AllocatorStats stats_;
  std::vector<std::pair<int, PressureHandler>> handlers_;
  int next_handler_id_ = 1;
  std::function<std::size_t()> evictable_probe_;
};

CachingAllocator::CachingAllocator(Backend& backend, AllocatorOptions options)
    : impl_(std::make_unique<Impl>(backend, options)) {}
CachingAllocator::~CachingAllocator() = default;
void* CachingAllocator::allocate(std::size_t bytes, Stream stream) {
  return impl_->allocate(bytes, stream);
}
void CachingAllocator::deallocate(void* ptr) { impl_->deallocate(ptr); }
void CachingAllocator::record_stream(void* ptr, Stream stream) {
  impl_->record_stream(ptr, stream);
}
std::size_t CachingAllocator::requested_size(const void* ptr) const {
  return impl_->requested_size(ptr);
}
Stream CachingAllocator::allocation_stream(const void* ptr) const {
  return impl_->allocation_stream(ptr);
}
int CachingAllocator::add_pressure_handler(PressureHandler handler) {
  return impl_->add_pressure_handler(std::move(handler));
}
void CachingAllocator::remove_pressure_handler(int id) { impl_->remove_pressure_handler(id); }
void CachingAllocator::set_evictable_bytes_probe(std::function<std::size_t()> probe) {
  impl_->set_evictable_bytes_probe(std::move(probe));
}
void CachingAllocator::set_budget(std::size_t bytes) { impl_->set_budget(bytes); }
std::size_t CachingAllocator::budget() const { return impl_->budget(); }
void CachingAllocator::release_cached() { impl_->release_cached(); }
AllocatorStats CachingAllocator::stats() const { return impl_->stats(); }
void CachingAllocator::reset_peaks() { impl_->reset_peaks(); }
std::vector<SegmentSnapshot> CachingAllocator::snapshot() const { return impl_->snapshot(); }
Backend& CachingAllocator::backend() const noexcept { return impl_->backend(); }

}  // namespace memento
