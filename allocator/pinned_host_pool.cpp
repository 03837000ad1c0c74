#include "memento/pinned_host_pool.hpp"

#include <fmt/format.h>

#include <bit>
#include <exception>

#include "allocator/size_policy.hpp"
#include "backends/numa.hpp"
#include "common/log.hpp"
#include "memento/error.hpp"

namespace memento {

PinnedHostPool::PinnedHostPool(Backend& backend, std::size_t host_budget) : backend_(backend) {
  MEMENTO_EXPECTS(host_budget > 0, "pinned host pool: the host budget must be positive");
  stats_.budget = host_budget;
  // The node nearest a physical device; without one, the caller's node.
  numa_node_ = backend.info().numa_node_nearest_device ? backend.info().numa_node
                                                       : numa::node_of_calling_thread();
}

PinnedHostPool::~PinnedHostPool() {
  std::lock_guard lock(mutex_);
  if (!in_use_.empty())
    log::warning(
        fmt::format("pinned host pool destroyed with {} buffer(s) in use", in_use_.size()));
  for (auto& [size, b] : idle_) free_buffer(b);
  for (auto& [ptr, b] : in_use_) free_buffer(b);
}

std::size_t PinnedHostPool::rounded_size(std::size_t bytes) noexcept {
  if (bytes <= sizes::kSmallRequest) return std::bit_ceil(std::max<std::size_t>(bytes, 512));
  return sizes::round_up(bytes, sizes::kLargeRounding);
}

void* PinnedHostPool::try_allocate(std::size_t bytes) {
  MEMENTO_EXPECTS(bytes > 0, "pinned host pool: cannot allocate 0 bytes");
  if (bytes > sizes::kMaxRequest) return nullptr;
  std::size_t size = rounded_size(bytes);
  std::lock_guard lock(mutex_);
  void* ptr = take_cached(size, /*wait=*/false);
  if (ptr == nullptr && stats_.reserved + size > stats_.budget) {
    // At the budget: a same-size buffer whose copy is still running is worth waiting for
    // (pinning a new one costs milliseconds); otherwise drop idle buffers to make room.
    ptr = take_cached(size, /*wait=*/true);
    if (ptr == nullptr && !drop_idle(size)) {
      ++stats_.refusals;
      return nullptr;
    }
  }
  if (ptr == nullptr) {
    ptr = backend_.allocate_pinned(size, numa_node_);
    if (ptr == nullptr) {
      ++stats_.refusals;
      return nullptr;
    }
    ++stats_.misses;
    stats_.reserved += size;
    stats_.peak_reserved = std::max(stats_.peak_reserved, stats_.reserved);
    in_use_.emplace(ptr, Buffer{ptr, size, false, {}});
  } else {
    ++stats_.hits;
  }
  stats_.in_use += size;
  stats_.peak_in_use = std::max(stats_.peak_in_use, stats_.in_use);
  return ptr;
}

void* PinnedHostPool::take_cached(std::size_t size, bool wait) {
  auto [first, last] = idle_.equal_range(size);
  for (auto it = first; it != last; ++it) {
    if (it->second.has_event) {
      if (wait) {
        backend_.synchronize(it->second.last_use);
      } else if (!backend_.query(it->second.last_use)) {
        continue;
      }
    }
    Buffer b = it->second;
    idle_.erase(it);
    in_use_.emplace(b.ptr, b);
    return b.ptr;
  }
  return nullptr;
}

bool PinnedHostPool::drop_idle(std::size_t needed) {
  std::size_t idle_bytes = 0;
  for (const auto& [size, b] : idle_) idle_bytes += b.size;
  if (stats_.reserved - idle_bytes + needed > stats_.budget) return false;  // cannot help
  // Give back idle buffers, smallest sizes first, until `needed` more bytes fit.
  for (auto it = idle_.begin(); it != idle_.end() && stats_.reserved + needed > stats_.budget;) {
    if (it->second.has_event) backend_.synchronize(it->second.last_use);
    stats_.reserved -= it->second.size;
    free_buffer(it->second);
    it = idle_.erase(it);
  }
  return true;
}

void PinnedHostPool::deallocate(void* ptr, Stream stream) {
  std::lock_guard lock(mutex_);
  auto it = in_use_.find(ptr);
  MEMENTO_EXPECTS(it != in_use_.end(),
                  fmt::format("pinned host pool: deallocate({}) of a buffer it did not hand out "
                              "(double free or foreign pointer)",
                              ptr));
  Buffer& b = it->second;
  std::exception_ptr failure;
  try {
    if (!b.has_event) {
      b.last_use = backend_.create_event();
      b.has_event = true;
    }
    backend_.record(b.last_use, stream);
  } catch (const BackendError&) {
    // No event: wait for the stream here instead, so the buffer goes back all the same (a
    // caller never holds a half-freed buffer), and raise the error once the books are
    // straight; an asynchronous failure the wait reports takes its place.
    failure = std::current_exception();
    try {
      backend_.synchronize(stream);
    } catch (const AsyncBackendError&) {
      failure = std::current_exception();
    } catch (const BackendError&) {
    }
    if (b.has_event) backend_.destroy_event(b.last_use);  // its capture is stale
    b.has_event = false;
  }
  stats_.in_use -= b.size;
  idle_.emplace(b.size, b);
  in_use_.erase(it);
  if (failure) std::rethrow_exception(failure);
}

void PinnedHostPool::release_cached() {
  std::lock_guard lock(mutex_);
  for (auto& [size, b] : idle_) {
    if (b.has_event) backend_.synchronize(b.last_use);
    stats_.reserved -= b.size;
    free_buffer(b);
  }
  idle_.clear();
}

PinnedPoolStats PinnedHostPool::stats() const {
  std::lock_guard lock(mutex_);
  return stats_;
}

std::size_t PinnedHostPool::in_use_bytes() const {
  std::lock_guard lock(mutex_);
  return stats_.in_use;
}

void PinnedHostPool::free_buffer(Buffer& b) noexcept {
  if (b.has_event) backend_.destroy_event(b.last_use);
  b.has_event = false;
  backend_.free_pinned(b.ptr, b.size);
}

}  // namespace memento
