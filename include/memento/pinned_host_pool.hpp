// A cache of page-locked host buffers for offloaded activations: buffers are reused rather
// than pinned per tensor (pinning costs milliseconds), capped by a host budget, and placed
// on the NUMA node nearest the device.
#pragma once

#include <cstddef>
#include <map>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "memento/backend.hpp"

namespace memento {

struct PinnedPoolStats {
  std::size_t budget = 0;
  std::size_t reserved = 0;  ///< bytes pinned (cached or in use)
  std::size_t peak_reserved = 0;
  std::size_t in_use = 0;  ///< bytes handed out (rounded sizes)
  std::size_t peak_in_use = 0;
  std::size_t hits = 0;      ///< served from the cache
  std::size_t misses = 0;    ///< needed a new pinned buffer
  std::size_t refusals = 0;  ///< try_allocate returned nullptr: budget exhausted
};

class PinnedHostPool {
 public:
  /// `host_budget` caps the pinned bytes held (must be positive).
  PinnedHostPool(Backend& backend, std::size_t host_budget);
  ~PinnedHostPool();
  PinnedHostPool(const PinnedHostPool&) = delete;
  PinnedHostPool& operator=(const PinnedHostPool&) = delete;

  /// A pinned buffer of at least `bytes`, or nullptr when the host budget cannot hold it
  /// even after dropping idle cached buffers (callers fall back to recompute).
  [[nodiscard]] void* try_allocate(std::size_t bytes);
  /// Returns a buffer. It is reused only after the work submitted to `stream` so far (the
  /// copy that last touched it) has completed. LogicError for unknown pointers.
  void deallocate(void* ptr, Stream stream);
  /// Frees idle cached buffers back to the system (waits for their last copies).
  void release_cached();

  [[nodiscard]] PinnedPoolStats stats() const;
  /// stats().in_use alone.
  [[nodiscard]] std::size_t in_use_bytes() const;
  /// NUMA node buffers are placed on (-1: unknown, no placement).
  [[nodiscard]] int numa_node() const noexcept { return numa_node_; }

  /// Size class of a request: powers of two up to 1 MiB, then multiples of 2 MiB.
  [[nodiscard]] static std::size_t rounded_size(std::size_t bytes) noexcept;

 private:
  struct Buffer {
    void* ptr = nullptr;
    std::size_t size = 0;
    bool has_event = false;
    Event last_use{};
  };

  void* take_cached(std::size_t size, bool wait);
  bool drop_idle(std::size_t needed);
  void free_buffer(Buffer& b) noexcept;

  Backend& backend_;
  int numa_node_ = -1;
  mutable std::mutex mutex_;
  std::multimap<std::size_t, Buffer> idle_;  // by size
  std::unordered_map<void*, Buffer> in_use_;
  PinnedPoolStats stats_;
};

}  // namespace memento
