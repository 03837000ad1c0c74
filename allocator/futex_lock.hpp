// A mutex for the allocator's short critical sections: one atomic exchange to lock and one
// to unlock when uncontended (pthread_mutex pays for lock kinds, elision and robustness
// checks on every call), and a real sleep on the C++20 atomic wait (a futex on Linux) when
// contended, so a thread waiting out a long pressure path does not burn a core.
// The classic three-state futex mutex: 0 free, 1 locked, 2 locked with possible waiters.
#pragma once

#include <atomic>

namespace memento::detail {

class FutexLock {
 public:
  void lock() noexcept {
    int expected = 0;
    if (state_.compare_exchange_strong(expected, 1, std::memory_order_acquire)) return;
    lock_contended(expected);
  }

  bool try_lock() noexcept {
    int expected = 0;
    return state_.compare_exchange_strong(expected, 1, std::memory_order_acquire);
  }

  void unlock() noexcept {
    if (state_.exchange(0, std::memory_order_release) == 2) state_.notify_one();
  }

 private:
  void lock_contended(int seen) noexcept {
    // Mark "waiters possible" and sleep until the holder releases; whoever wins after a
    // wake keeps state 2 so the next unlock wakes the remaining sleepers.
    if (seen != 2) seen = state_.exchange(2, std::memory_order_acquire);
    while (seen != 0) {
      state_.wait(2, std::memory_order_relaxed);
      seen = state_.exchange(2, std::memory_order_acquire);
    }
  }

  std::atomic<int> state_{0};
};

}  // namespace memento::detail
