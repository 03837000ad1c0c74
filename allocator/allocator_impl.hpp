// The caching allocator's implementation class, shared by the files that implement it:
// caching_allocator.cpp (allocation and free), allocator_pressure.cpp (budget and the
// pressure path) and allocator_introspection.cpp (stats and snapshots).
#pragma once

#include <condition_variable>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

#include "allocator/block.hpp"
#include "allocator/futex_lock.hpp"
#include "allocator/stream_fences.hpp"
#include "memento/caching_allocator.hpp"

namespace memento {

class CachingAllocator::Impl {
 public:
  using Block = detail::Block;
  using FreeSet = detail::FreeSet;
  using Segment = detail::Segment;

  Impl(Backend& backend, AllocatorOptions options);
  ~Impl();
  void* allocate(std::size_t bytes, Stream stream);
  void* try_allocate(std::size_t bytes, Stream stream);
  void deallocate(void* ptr);
  void record_stream(void* ptr, Stream stream);
  std::size_t requested_size(const void* ptr) const;
  Stream allocation_stream(const void* ptr) const;
  int add_pressure_handler(PressureHandler handler);
  void remove_pressure_handler(int id);
  void set_evictable_bytes_probe(std::function<std::size_t()> probe);
  void set_budget(std::size_t bytes);
  std::size_t budget() const;
  void release_cached();
  AllocatorStats stats() const;
  std::size_t active_bytes() const;
  std::size_t take_allocated_peak();
  void reset_peaks();
  std::vector<SegmentSnapshot> snapshot() const;
  Backend& backend() const noexcept { return backend_; }

 private:
  static constexpr int kMaxPressureRounds = 64;
  static constexpr std::size_t kCoalesceEvery = 16;  // frees between coalescing passes

  void check_budget(std::size_t bytes) const;
  FreeSet& pool(bool small) noexcept { return small ? small_free_ : large_free_; }
  Block* find_or_grow(std::size_t size, Stream stream);
  /// Best fit on `stream`; with `without_split`, only a block that needs no split.
  Block* best_fit(FreeSet& set, Stream stream, std::size_t size, bool without_split = false);
  /// The smallest fitting block freed on another stream whose work is known to be done.
  /// Blocks whose stream has not been fenced since their free get a fence now, so a later
  /// call can use them; the pressure path waits for fences instead.
  Block* other_stream_fit(FreeSet& set, Stream stream, std::size_t size);
  Block* grow(std::size_t size, Stream stream, bool small);
  /// Hands out `b` (already out of its free set), splitting off the remainder.
  void* take(Block* b, std::size_t size, std::size_t requested, Stream stream);
  /// A freed block becomes reusable: stamp it and put it in its free set.
  void release_block(Block* b);
  /// After the events of a free could not be recorded: waits for `streams` on the host.
  /// Returns the error to raise (an asynchronous failure a wait reported, else the current).
  std::exception_ptr wait_streams_after_failure(const std::vector<Stream>& streams);
  /// exact_segments: gives a free block's segment back to the backend.
  void release_exact(Block* b);
  /// Merges the free runs (same stream) around the blocks freed since the last call; true
  /// if anything merged.
  bool coalesce_recent();
  /// Merges every run of adjacent free blocks, across streams: only right after
  /// drain_and_release made every cached block safe for every stream.
  void coalesce_all_streams();
  /// Whether `b` and its successor are both free and may merge.
  static bool joins(const Block* b, bool any_stream) noexcept;
  /// Merges `b` with the free blocks that follow it; true if anything merged.
  bool merge_run(Block* b, bool any_stream);
  /// Removes `n` from its segment's chain (its predecessor has absorbed it).
  void unlink(Block* n);
  /// Pressure, before any host synchronisation: makes `stream` wait on the device for the
  /// work that still guards cached blocks and moves them to `stream`, where stream order
  /// then protects them, until a block of `size` fits. Blocks with record_stream users go
  /// first, oldest first and one at a time (each adds a wait); then other streams' frees.
  Block* adopt_on_device(std::size_t size, Stream stream);
  /// Merges a block that just became free on its stream with its free neighbours there.
  void merge_around(Block* b);
  void drain_and_release();
  std::size_t call_handlers(std::unique_lock<detail::FutexLock>& lock, std::size_t size,
                            Stream stream);
  [[noreturn]] void throw_oom(std::unique_lock<detail::FutexLock>& lock, std::size_t bytes,
                              Stream stream, std::size_t freed, const char* why);
  Block* live_block(const void* ptr, const char* what) const;
  Block* new_block();
  void recycle(Block* b);

  Backend& backend_;
  mutable detail::FutexLock mutex_;
  std::size_t budget_ = 0;
  bool exact_ = false;  // AllocatorOptions::exact_segments
  FreeSet small_free_;
  FreeSet large_free_;
  detail::LiveSet live_;
  std::vector<std::unique_ptr<Segment>> segments_;
  std::vector<std::unique_ptr<Block>> storage_;
  std::vector<Block*> spare_blocks_;
  detail::StreamFences fences_;
  std::uint64_t free_seq_ = 0;
  std::vector<Block*> recent_frees_;  // freed since the last coalesce_recent()
  AllocatorStats stats_;
  std::size_t window_peak_ = 0;  // most allocated bytes since the last take_allocated_peak()
  struct HandlerEntry {
    int id = 0;
    PressureHandler fn;
    int running = 0;  // calls in progress (without the lock)
  };
  std::vector<std::shared_ptr<HandlerEntry>> handlers_;
  std::condition_variable_any handler_idle_;
  int next_handler_id_ = 1;
  std::function<std::size_t()> evictable_probe_;
};

}  // namespace memento
