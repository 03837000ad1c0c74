#include "memento/caching_allocator.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <mutex>

#include "allocator/allocator_impl.hpp"
#include "allocator/block.hpp"
#include "allocator/size_policy.hpp"
#include "allocator/stream_fences.hpp"
#include "common/log.hpp"
#include "memento/bytes.hpp"
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

CachingAllocator::Impl::Impl(Backend& backend, AllocatorOptions options)
    : backend_(backend), exact_(options.exact_segments), fences_(backend) {
  std::size_t capacity = backend.info().capacity;
  budget_ = options.budget == 0 ? capacity : options.budget;
  check_budget(budget_);
  stats_.budget = budget_;
}

CachingAllocator::Impl::~Impl() {
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

void* CachingAllocator::Impl::allocate(std::size_t bytes, Stream stream) {
  if (bytes == 0) return nullptr;
  std::unique_lock lock(mutex_);
  if (bytes > sizes::kMaxRequest || (exact_ ? bytes : sizes::block_size(bytes)) > budget_) {
    throw_oom(lock, bytes, stream, 0, "the request alone exceeds the budget");
  }
  const std::size_t size = exact_ ? bytes : sizes::block_size(bytes);
  std::size_t freed_by_handlers = 0;
  for (int round = 0;; ++round) {
    if (Block* b = find_or_grow(size, stream)) return take(b, size, bytes, stream);
    // Pressure. First let the stream wait on the device for blocks still in use by other
    // streams (an offload's copy, say): the host keeps running ahead. Then wait on the
    // host for in-flight work, give back free segments, and try once more before asking
    // the handlers.
    if (Block* b = adopt_on_device(size, stream)) return take(b, size, bytes, stream);
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

void* CachingAllocator::Impl::try_allocate(std::size_t bytes, Stream stream) {
  if (bytes == 0 || bytes > sizes::kMaxRequest) return nullptr;
  std::unique_lock lock(mutex_);
  const std::size_t size = exact_ ? bytes : sizes::block_size(bytes);
  if (size > budget_) return nullptr;
  Block* b = find_or_grow(size, stream);
  return b != nullptr ? take(b, size, bytes, stream) : nullptr;
}

void CachingAllocator::Impl::deallocate(void* ptr) {
  if (ptr == nullptr) return;
  std::lock_guard lock(mutex_);
  Block* b = live_block(ptr, "deallocate");
  std::exception_ptr failure;
  if (!b->extra_streams.empty()) {
    // Other streams may still read or write it: reusable only once their work is done.
    try {
      fences_.add_pending(b, b->extra_streams);
      b->pending = true;
    } catch (const BackendError&) {
      // The events could not be recorded: wait for those streams here instead. The block
      // goes back all the same, so a caller never holds a half-freed block; the error
      // (with any failure the waits report) is raised once the books are straight.
      failure = wait_streams_after_failure(b->extra_streams);
    }
    b->extra_streams.clear();
  }
  live_.erase(live_.iterator_to(*b));
  b->allocated = false;
  stats_.allocated.sub(b->size);
  stats_.requested.sub(b->requested);
  stats_.live_blocks.sub(1);
  ++stats_.frees;
  b->requested = 0;
  if (!b->pending) release_block(b);
  if (failure) std::rethrow_exception(failure);
}

std::exception_ptr CachingAllocator::Impl::wait_streams_after_failure(
    const std::vector<Stream>& streams) {
  std::exception_ptr failure = std::current_exception();
  for (Stream s : streams) {
    try {
      backend_.synchronize(s);  // returns, or reports, only once the stream's work is done
    } catch (const AsyncBackendError&) {
      failure = std::current_exception();  // queued work failed: the caller must know that
    } catch (const BackendError&) {
    }
  }
  return failure;
}

void CachingAllocator::Impl::record_stream(void* ptr, Stream stream) {
  std::lock_guard lock(mutex_);
  Block* b = live_block(ptr, "record_stream");
  (void)backend_.native_handle(stream);  // rejects a stream the backend does not know
  if (stream == b->stream) return;
  if (std::find(b->extra_streams.begin(), b->extra_streams.end(), stream) == b->extra_streams.end())
    b->extra_streams.push_back(stream);
}

std::size_t CachingAllocator::Impl::requested_size(const void* ptr) const {
  std::lock_guard lock(mutex_);
  return live_block(ptr, "requested_size")->requested;
}

Stream CachingAllocator::Impl::allocation_stream(const void* ptr) const {
  std::lock_guard lock(mutex_);
  return live_block(ptr, "allocation_stream")->stream;
}

void CachingAllocator::Impl::check_budget(std::size_t bytes) const {
  std::size_t capacity = backend_.info().capacity;
  MEMENTO_EXPECTS(bytes > 0 && bytes <= capacity,
                  fmt::format("allocator budget {} bytes is not accepted: it must be positive "
                              "and at most the device capacity of {} ({} bytes)",
                              bytes, format_bytes(capacity), capacity));
}

CachingAllocator::Impl::Block* CachingAllocator::Impl::find_or_grow(std::size_t size,
                                                                    Stream stream) {
  // Over the budget (it was lowered below the reserved bytes, and segments that hold live
  // blocks cannot be given back): cached blocks serve only while the allocated bytes stay
  // within it, else the pressure path evicts, and gives back segments as they empty.
  if (stats_.reserved.current > budget_ && stats_.allocated.current + size > budget_)
    return nullptr;
  bool small = sizes::is_small(size);
  FreeSet& set = pool(small);
  // A block that fits without a split is taken as it is (the steady state of a training
  // loop). Before splitting a larger one, merge the frees not yet coalesced: splitting a
  // fragment while its free neighbours wait to be merged fragments the cache.
  if (Block* b = best_fit(set, stream, size, /*without_split=*/!recent_frees_.empty())) {
    ++stats_.cache_hits;
    return b;
  }
  coalesce_recent();
  // Blocks freed while another stream still used them may be ready now.
  fences_.collect_completed([this](Block* b) {
    b->pending = false;
    release_block(b);
  });
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
    Block* b = best_fit(large_free_, stream, size);
    if (b == nullptr && (b = other_stream_fit(large_free_, stream, size)) != nullptr)
      ++stats_.cross_stream_reuses;
    if (b != nullptr) ++stats_.cache_hits;
    return b;
  }
  return nullptr;
}

CachingAllocator::Impl::Block* CachingAllocator::Impl::best_fit(FreeSet& set, Stream stream,
                                                                std::size_t size,
                                                                bool without_split) {
  auto it = set.lower_bound(FitKey{stream.id, size}, FitCompare{});
  if (it == set.end() || it->stream != stream) return nullptr;
  if (without_split && sizes::should_split(it->size, size)) return nullptr;
  Block* b = &*it;
  set.erase(it);
  return b;
}

CachingAllocator::Impl::Block* CachingAllocator::Impl::other_stream_fit(FreeSet& set, Stream stream,
                                                                        std::size_t size) {
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

CachingAllocator::Impl::Block* CachingAllocator::Impl::grow(std::size_t size, Stream stream,
                                                            bool small) {
  std::size_t preferred = exact_ ? size : sizes::segment_size(size);
  std::size_t fallback = exact_ || small ? size : sizes::round_up(size, sizes::kLargeRounding);
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
    fences_.note_stream(stream);  // its unused rest is cached for this stream, and others
    stats_.reserved.add(seg_size);
    stats_.segments.add(1);
    ++stats_.segment_allocs;
    return b;
  }
  return nullptr;
}

void* CachingAllocator::Impl::take(Block* b, std::size_t size, std::size_t requested,
                                   Stream stream) {
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
  window_peak_ = std::max(window_peak_, stats_.allocated.current);
  stats_.live_blocks.add(1);
  ++stats_.allocations;
  return b->ptr;
}

void CachingAllocator::Impl::release_block(Block* b) {
  stats_.active.sub(b->size);
  if (exact_) return release_exact(b);
  b->free_seq = ++free_seq_;
  fences_.note_stream(b->stream);
  // Coalescing is deferred: a block freed and taken again at the same size (the steady
  // state of a training loop) then costs no split and no merge. Every kCoalesceEvery frees,
  // and before any split, the runs around the recent frees are merged.
  pool(b->segment->small).insert(*b);
  recent_frees_.push_back(b);
  if (recent_frees_.size() >= kCoalesceEvery) coalesce_recent();
}

void CachingAllocator::Impl::release_exact(Block* b) {
  // Where memory holds real bytes a segment goes back only once the stream it was freed on
  // is done with it; address space alone (sim) is not touched by queued work.
  if (backend_.info().holds_data) backend_.synchronize(b->stream);
  Segment* seg = b->segment;
  backend_.free_segment(seg->base, seg->size);
  stats_.reserved.sub(seg->size);
  stats_.segments.sub(1);
  ++stats_.segment_frees;
  recycle(b);
  std::erase_if(segments_, [seg](const std::unique_ptr<Segment>& s) { return s.get() == seg; });
}

bool CachingAllocator::Impl::coalesce_recent() {
  bool merged = false;
  for (Block* b : recent_frees_) {
    // Absorbed by an earlier merge (recycled: no segment), or taken again since.
    if (b->segment == nullptr || b->allocated || b->pending) continue;
    while (b->prev != nullptr && joins(b->prev, false)) b = b->prev;
    merged |= merge_run(b, false);
  }
  recent_frees_.clear();
  return merged;
}

void CachingAllocator::Impl::coalesce_all_streams() {
  for (auto& seg : segments_)
    for (Block* b = seg->first; b != nullptr; b = b->next)
      if (!b->allocated && !b->pending) merge_run(b, true);
  recent_frees_.clear();
}

bool CachingAllocator::Impl::joins(const Block* b, bool any_stream) noexcept {
  const Block* n = b->next;
  return !b->allocated && !b->pending && n != nullptr && !n->allocated && !n->pending &&
         (any_stream || n->stream == b->stream);
}

bool CachingAllocator::Impl::merge_run(Block* b, bool any_stream) {
  if (!joins(b, any_stream)) return false;
  FreeSet& set = pool(b->segment->small);
  set.erase(set.iterator_to(*b));  // its key (size) changes
  while (joins(b, any_stream)) {
    Block* n = b->next;
    set.erase(set.iterator_to(*n));
    b->size += n->size;
    b->free_seq = std::max(b->free_seq, n->free_seq);
    unlink(n);
  }
  set.insert(*b);
  return true;
}

void CachingAllocator::Impl::unlink(Block* n) {
  if (n->prev != nullptr) n->prev->next = n->next;
  if (n->next != nullptr) n->next->prev = n->prev;
  recycle(n);
}

CachingAllocator::Impl::Block* CachingAllocator::Impl::live_block(const void* ptr,
                                                                  const char* what) const {
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

CachingAllocator::Impl::Block* CachingAllocator::Impl::new_block() {
  if (spare_blocks_.empty()) {
    storage_.push_back(std::make_unique<Block>());
    return storage_.back().get();
  }
  Block* b = spare_blocks_.back();
  spare_blocks_.pop_back();
  return b;
}

void CachingAllocator::Impl::recycle(Block* b) {
  *b = Block{};
  spare_blocks_.push_back(b);
}

CachingAllocator::CachingAllocator(Backend& backend, AllocatorOptions options)
    : impl_(std::make_unique<Impl>(backend, options)) {}
CachingAllocator::~CachingAllocator() = default;
void* CachingAllocator::allocate(std::size_t bytes, Stream stream) {
  return impl_->allocate(bytes, stream);
}
void* CachingAllocator::try_allocate(std::size_t bytes, Stream stream) {
  return impl_->try_allocate(bytes, stream);
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
std::size_t CachingAllocator::active_bytes() const { return impl_->active_bytes(); }
std::size_t CachingAllocator::take_allocated_peak() { return impl_->take_allocated_peak(); }
void CachingAllocator::reset_peaks() { impl_->reset_peaks(); }
std::vector<SegmentSnapshot> CachingAllocator::snapshot() const { return impl_->snapshot(); }
Backend& CachingAllocator::backend() const noexcept { return impl_->backend(); }

}  // namespace memento
