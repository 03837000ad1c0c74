#include "allocator/futex_lock.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

namespace memento::detail {
namespace {

TEST(FutexLock, ExcludesUnderContention) {
  FutexLock lock;
  long counter = 0;  // deliberately not atomic: the lock must make the increments exclusive
  constexpr int kThreads = 4;
  constexpr int kIterations = 50000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < kIterations; ++i) {
        std::lock_guard guard(lock);
        ++counter;
      }
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(counter, long{kThreads} * kIterations);
}

TEST(FutexLock, TryLockFailsWhileHeldAndSleepersWake) {
  FutexLock lock;
  lock.lock();
  EXPECT_FALSE(lock.try_lock());
  bool entered = false;
  std::thread waiter([&] {
    std::lock_guard guard(lock);  // sleeps until the unlock below
    entered = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  lock.unlock();
  waiter.join();
  EXPECT_TRUE(entered);
  EXPECT_TRUE(lock.try_lock());
  lock.unlock();
}

}  // namespace
}  // namespace memento::detail
