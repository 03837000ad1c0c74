// The caching device allocator: blocks carved from backend segments, best fit by
// (stream, size, address), stream-ordered reuse, and a hard budget on reserved bytes with a
// pressure path that asks registered handlers (the runtime's eviction manager) for memory.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <vector>

#include "memento/allocator_stats.hpp"
#include "memento/backend.hpp"

namespace memento {

struct AllocatorOptions {
  /// Hard cap on bytes reserved from the backend; 0 means the device capacity.
  std::size_t budget = 0;
  /// Every allocation gets a segment of exactly its size, given back as soon as the block
  /// is free (after the work of the streams that used it, on real backends): reserved bytes
  /// then equal live bytes, with no rounding, caching or fragmentation. A model of the
  /// memory accounting most published simulators assume (`memento replay
  /// --memory-model counted`), not a fast allocator.
  bool exact_segments = false;
};

class CachingAllocator {
 public:
  /// Called under memory pressure with the bytes the failed request needs and its stream.
  /// Returns the bytes it freed (by calling deallocate); 0 when it can free nothing.
  using PressureHandler = std::function<std::size_t(std::size_t bytes_needed, Stream stream)>;

  explicit CachingAllocator(Backend& backend, AllocatorOptions options = {});
  ~CachingAllocator();
  CachingAllocator(const CachingAllocator&) = delete;
  CachingAllocator& operator=(const CachingAllocator&) = delete;

  /// A block of at least `bytes` usable on `stream`, 512-byte aligned; nullptr for 0 bytes.
  /// Throws OutOfMemory (with the figures) when the budget cannot be met.
  [[nodiscard]] void* allocate(std::size_t bytes, Stream stream = Backend::default_stream());
  /// allocate() without the pressure path: nullptr when neither a cached block nor a new
  /// segment within the budget serves `bytes` as things stand. Nothing is evicted and
  /// nothing waited for (for work that may as well wait, such as an early copy back).
  [[nodiscard]] void* try_allocate(std::size_t bytes, Stream stream = Backend::default_stream());

  /// Returns a block. Work using it must have been submitted to its allocation stream (or to
  /// streams named with record_stream). Throws LogicError for pointers that are not live
  /// allocations of this allocator (double or foreign frees); the state is left unchanged.
  void deallocate(void* ptr);

  /// Marks `stream` as another user of the block: it is not reused until the work submitted
  /// to `stream` before the block is freed has completed.
  void record_stream(void* ptr, Stream stream);

  /// The size asked for when `ptr` was allocated. LogicError if `ptr` is not live.
  [[nodiscard]] std::size_t requested_size(const void* ptr) const;
  /// The stream `ptr` was allocated on. LogicError if `ptr` is not live.
  [[nodiscard]] Stream allocation_stream(const void* ptr) const;

  /// Registers a pressure handler; handlers are tried in registration order. Returns an id.
  /// Handlers run without the allocator's lock. Allocations a handler makes get no nested
  /// pressure round (they fail with OutOfMemory rather than recurse).
  int add_pressure_handler(PressureHandler handler);
  /// Unregisters a handler; returns only once no call to it is still running. LogicError
  /// for an unknown id, or when called from inside a pressure handler.
  void remove_pressure_handler(int id);

  /// Reports bytes of live allocations that the runtime could still evict; used to state
  /// the unevictable bytes in OutOfMemory messages (without it, all live bytes count).
  void set_evictable_bytes_probe(std::function<std::size_t()> probe);

  /// Changes the budget; must be positive and at most the device capacity. Lowering it
  /// below the reserved bytes releases cached segments; segments that still hold live
  /// blocks stay reserved (over the budget) until they are empty and given back (by the
  /// pressure path or release_cached), and meanwhile allocations are served from them only
  /// while the allocated bytes stay within the budget (beyond, the pressure path runs).
  /// Thread-safe: set_budget and budget() may be called from any thread (under the allocator's
  /// lock). The next allocation sees the new budget; a Runtime with plan_from_observation plans for
  /// it at its next begin_step, so a change made between two steps (tests/soak) applies to the
  /// whole of the next one.
  void set_budget(std::size_t bytes);
  [[nodiscard]] std::size_t budget() const;

  /// Waits for pending stream events and gives every fully free segment back.
  void release_cached();

  /// All the counters, and the free bytes found by walking every segment's blocks.
  [[nodiscard]] AllocatorStats stats() const;
  /// stats().active.current without the walk: cheap enough for every tensor use.
  [[nodiscard]] std::size_t active_bytes() const;
  /// The most allocated bytes since the last call (a transient block between two calls
  /// counts), and a new window from the bytes allocated now.
  [[nodiscard]] std::size_t take_allocated_peak();
  void reset_peaks();
  [[nodiscard]] std::vector<SegmentSnapshot> snapshot() const;

  [[nodiscard]] Backend& backend() const noexcept;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace memento
