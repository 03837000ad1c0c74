// Statistics and snapshots of the caching allocator.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace memento {

/// A current value and its high-water mark.
struct StatCounter {
  std::size_t current = 0;
  std::size_t peak = 0;
  void add(std::size_t n) noexcept {
    current += n;
    if (current > peak) peak = current;
  }
  void sub(std::size_t n) noexcept { current -= n; }
};

struct AllocatorStats {
  std::size_t budget = 0;   ///< hard cap on reserved bytes
  StatCounter allocated;    ///< bytes in blocks handed out (sizes rounded up)
  StatCounter requested;    ///< bytes callers asked for
  StatCounter reserved;     ///< bytes in segments taken from the backend
  StatCounter active;       ///< allocated plus freed blocks still awaiting stream events
  StatCounter segments;     ///< segments held
  StatCounter live_blocks;  ///< allocations not yet freed

  std::size_t allocations = 0;          ///< successful allocate() calls
  std::size_t frees = 0;                ///< deallocate() calls
  std::size_t cache_hits = 0;           ///< allocations served from cached blocks
  std::size_t cross_stream_reuses = 0;  ///< cached blocks handed to a different stream
  std::size_t segment_allocs = 0;       ///< segments taken from the backend
  std::size_t segment_frees = 0;        ///< segments given back
  std::size_t pressure_calls = 0;       ///< pressure-handler invocations
  std::size_t pressure_freed = 0;       ///< bytes the pressure handlers reported freeing
  std::size_t stream_syncs = 0;         ///< pressure-path host waits on stream events
  std::size_t stream_waits = 0;   ///< pressure-path device-side waits that moved cached blocks
  std::size_t out_of_memory = 0;  ///< OutOfMemory exceptions thrown

  std::size_t free_bytes = 0;          ///< reserved bytes in free, reusable blocks
  std::size_t largest_free_block = 0;  ///< size of the largest such block

  /// External fragmentation of the cache: 1 - largest free block / free bytes (0 when the
  /// cache is empty). High values mean free memory exists but not in one piece.
  [[nodiscard]] double fragmentation() const noexcept {
    return free_bytes == 0
               ? 0.0
               : 1.0 - static_cast<double>(largest_free_block) / static_cast<double>(free_bytes);
  }
};

/// A fixed-width, human-readable table of the stats (one metric per row).
[[nodiscard]] std::string format_stats_table(const AllocatorStats& stats);

/// One block in a snapshot.
struct BlockSnapshot {
  std::uintptr_t address = 0;
  std::size_t size = 0;
  std::size_t requested = 0;  ///< 0 for free blocks
  std::uint32_t stream = 0;
  bool allocated = false;
  bool pending = false;  ///< freed, waiting on events of streams recorded with record_stream
};

/// One segment and its blocks in address order.
struct SegmentSnapshot {
  std::uintptr_t address = 0;
  std::size_t size = 0;
  bool small_pool = false;
  std::vector<BlockSnapshot> blocks;
};

}  // namespace memento
