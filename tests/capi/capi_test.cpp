// The C API as PyTorch's CUDAPluggableAllocator and C callers see it: configuration from the
// environment, malloc/free with stats, error reporting through memento_last_error(), budgets.
#include <gtest/gtest.h>
#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <optional>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "capi/plan_fixture.hpp"
#include "memento/memento.h"

namespace {

constexpr std::size_t kMiB = std::size_t{1} << 20;

// The exact pointer types torch.cuda.memory.CUDAPluggableAllocator casts the loaded symbols
// to (with cudaStream_t = CUstream_st*).
using TorchMalloc = void* (*)(ssize_t, int, memento_stream_t);
using TorchFree = void (*)(void*, ssize_t, int, memento_stream_t);
static_assert(std::is_same_v<decltype(&memento_malloc), TorchMalloc>);
static_assert(std::is_same_v<decltype(&memento_free), TorchFree>);
static_assert(std::is_same_v<memento_stream_t, CUstream_st*>);
[[maybe_unused]] constexpr TorchMalloc kTorchMalloc = &memento_malloc;
[[maybe_unused]] constexpr TorchFree kTorchFree = &memento_free;

using memento::testing::contains;

std::string last_error() { return memento_last_error(); }

memento_stats stats() {
  memento_stats s{};
  EXPECT_EQ(memento_get_stats(&s), 0) << memento_last_error();
  return s;
}

/// Each test starts from a fresh process-wide allocator configured by its own environment
/// (the fixture the planning API's tests share).
class CApi : public memento::testing::PlanApiEnv {
 protected:
  /// Sets a variable and drops the current instance so that the next call reads it.
  static void set(const char* name, const char* value) {
    ::setenv(name, value, 1);
    memento_shutdown();
  }
};

TEST_F(CApi, MallocFreeRoundTripUpdatesStats) {
  const memento_stats before = stats();
  EXPECT_EQ(before.allocated, 0u);
  EXPECT_EQ(before.live_blocks, 0u);

  void* a = memento_malloc(1000, 0, nullptr);
  ASSERT_NE(a, nullptr) << memento_last_error();
  EXPECT_EQ(last_error(), "");
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(a) % 512, 0u);
  void* b = memento_malloc(3 * kMiB, 0, nullptr);
  ASSERT_NE(b, nullptr) << memento_last_error();
  EXPECT_NE(a, b);
  // host memory is real: the blocks are writable.
  std::memset(a, 1, 1000);
  std::memset(b, 2, 3 * kMiB);

  memento_stats s = stats();
  EXPECT_EQ(s.requested, 1000u + 3 * kMiB);
  EXPECT_GE(s.allocated, s.requested);
  EXPECT_EQ(s.live_blocks, 2u);
  EXPECT_EQ(s.allocations, 2u);
  EXPECT_GE(s.reserved, s.allocated);
  EXPECT_EQ(s.budget, 64 * kMiB) << "without MEMENTO_BUDGET the budget is the device capacity";

  memento_free(a, 1000, 0, nullptr);
  EXPECT_EQ(last_error(), "");
  s = stats();
  EXPECT_EQ(s.requested, 3 * kMiB);
  EXPECT_EQ(s.live_blocks, 1u);
  memento_free(b, static_cast<ssize_t>(3 * kMiB), 0, nullptr);
  EXPECT_EQ(last_error(), "");
  s = stats();
  EXPECT_EQ(s.allocated, 0u);
  EXPECT_EQ(s.requested, 0u);
  EXPECT_EQ(s.live_blocks, 0u);
  EXPECT_EQ(s.frees, 2u);
  EXPECT_EQ(s.peak_requested, 1000u + 3 * kMiB);
}

TEST_F(CApi, FreeOfNullIsANoOp) {
  memento_free(nullptr, 0, 0, nullptr);
  EXPECT_EQ(last_error(), "");
  memento_free(nullptr, 123, 0, nullptr);
  EXPECT_EQ(last_error(), "");
}

TEST_F(CApi, ZeroSizeIsNullWithoutAnError) {
  EXPECT_EQ(memento_malloc(0, 0, nullptr), nullptr);
  EXPECT_EQ(last_error(), "");
  EXPECT_EQ(stats().allocations, 0u);
}

TEST_F(CApi, NegativeSizeIsNullWithAnError) {
  EXPECT_EQ(memento_malloc(-5, 0, nullptr), nullptr);
  EXPECT_TRUE(contains(memento_last_error(), "negative size")) << memento_last_error();
  EXPECT_TRUE(contains(memento_last_error(), "-5")) << memento_last_error();
  // A later successful call clears the error.
  void* p = memento_malloc(64, 0, nullptr);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(last_error(), "");
  memento_free(p, 64, 0, nullptr);
}

TEST_F(CApi, HugeSizeIsNullWithAnOutOfMemoryError) {
  // No rounding overflow may turn an absurd request into a small block.
  for (ssize_t size : {static_cast<ssize_t>(65 * kMiB), std::numeric_limits<ssize_t>::max(),
                       std::numeric_limits<ssize_t>::max() - 511}) {
    EXPECT_EQ(memento_malloc(size, 0, nullptr), nullptr) << size;
    EXPECT_NE(last_error(), "") << size;
  }
  EXPECT_EQ(stats().live_blocks, 0u);
  EXPECT_EQ(stats().allocated, 0u);
}

TEST_F(CApi, WrongDeviceIndexIsNullAndNamesTheConfiguredDevice) {
  EXPECT_EQ(memento_malloc(1024, 3, nullptr), nullptr);
  const std::string err = last_error();
  EXPECT_NE(err.find("device 3"), std::string::npos) << err;
  EXPECT_NE(err.find("configured device 0"), std::string::npos) << err;
  EXPECT_NE(err.find("host"), std::string::npos) << err;
  EXPECT_EQ(stats().allocations, 0u);
}

TEST_F(CApi, LastErrorIsTheMessageWithoutASourceLocation) {
  EXPECT_EQ(memento_malloc(1024, 3, nullptr), nullptr);
  EXPECT_EQ(last_error().rfind("memento_malloc: device 3 does not match", 0), 0u) << last_error();
  EXPECT_EQ(memento_malloc(static_cast<ssize_t>(65 * kMiB), 0, nullptr), nullptr);
  EXPECT_EQ(last_error().rfind("memento_malloc: out of memory on host", 0), 0u) << last_error();
  set("MEMENTO_BUDGET", "12XB");
  EXPECT_EQ(memento_malloc(1024, 0, nullptr), nullptr);
  const std::string err = last_error();
  EXPECT_EQ(err.rfind("memento_malloc: ", 0), 0u) << err;
  EXPECT_NE(err.find("12XB"), std::string::npos) << err;
  EXPECT_EQ(err.find(".cpp"), std::string::npos) << err;  // the message, not where it was raised
}

TEST_F(CApi, WrongDeviceOnSimNamesTheSimDevice) {
  set("MEMENTO_DEVICE", "sim:a100-40gb");
  EXPECT_EQ(memento_malloc(1024, 1, nullptr), nullptr);
  EXPECT_TRUE(contains(memento_last_error(), "sim:a100-40gb")) << memento_last_error();
  // The right index works; sim memory is address space only, never touched here.
  void* p = memento_malloc(1024, 0, nullptr);
  ASSERT_NE(p, nullptr) << memento_last_error();
  EXPECT_EQ(stats().live_blocks, 1u);
  memento_free(p, 1024, 0, nullptr);
  EXPECT_EQ(last_error(), "");
  EXPECT_EQ(stats().live_blocks, 0u);
}

TEST_F(CApi, SimDeviceUsesTheProfileCapacity) {
  set("MEMENTO_DEVICE", "sim:a100-40gb");
  EXPECT_GT(memento_get_budget(), std::size_t{39} << 30) << memento_last_error();
  // A large allocation is fine: nothing is touched.
  void* p = memento_malloc(static_cast<ssize_t>(std::size_t{8} << 30), 0, nullptr);
  ASSERT_NE(p, nullptr) << memento_last_error();
  memento_free(p, static_cast<ssize_t>(std::size_t{8} << 30), 0, nullptr);
  EXPECT_EQ(last_error(), "");
}

TEST_F(CApi, DoubleFreeIsReportedAndChangesNothing) {
  void* a = memento_malloc(4096, 0, nullptr);
  void* b = memento_malloc(8192, 0, nullptr);
  ASSERT_TRUE(a && b);
  memento_free(a, 4096, 0, nullptr);
  EXPECT_EQ(last_error(), "");
  const memento_stats before = stats();

  memento_free(a, 4096, 0, nullptr);  // double free
  EXPECT_TRUE(contains(memento_last_error(), "not a live allocation")) << memento_last_error();
  const memento_stats after = stats();
  EXPECT_EQ(after.live_blocks, before.live_blocks);
  EXPECT_EQ(after.allocated, before.allocated);
  EXPECT_EQ(after.requested, before.requested);
  EXPECT_EQ(after.frees, before.frees);

  // The allocator still works: the other block frees, new ones allocate.
  memento_free(b, 8192, 0, nullptr);
  EXPECT_EQ(last_error(), "");
  EXPECT_EQ(stats().live_blocks, 0u);
  void* c = memento_malloc(4096, 0, nullptr);
  ASSERT_NE(c, nullptr);
  memento_free(c, 4096, 0, nullptr);
  EXPECT_EQ(stats().live_blocks, 0u);
}

TEST_F(CApi, ForeignPointerFreeIsReportedAndChangesNothing) {
  void* a = memento_malloc(4096, 0, nullptr);
  ASSERT_NE(a, nullptr);
  const memento_stats before = stats();
  int on_stack = 0;
  memento_free(&on_stack, sizeof on_stack, 0, nullptr);
  EXPECT_TRUE(contains(memento_last_error(), "not a live allocation")) << memento_last_error();
  // A pointer into the middle of a live block is not a live allocation either.
  memento_free(static_cast<char*>(a) + 512, 512, 0, nullptr);
  EXPECT_TRUE(contains(memento_last_error(), "not a live allocation")) << memento_last_error();
  const memento_stats after = stats();
  EXPECT_EQ(after.live_blocks, before.live_blocks);
  EXPECT_EQ(after.requested, before.requested);
  EXPECT_EQ(after.frees, before.frees);
  memento_free(a, 4096, 0, nullptr);
  EXPECT_EQ(last_error(), "");
  EXPECT_EQ(stats().live_blocks, 0u);
}

TEST_F(CApi, FreeWithTheWrongSizeIsReportedAndNotFreed) {
  void* a = memento_malloc(4096, 0, nullptr);
  ASSERT_NE(a, nullptr);
  memento_free(a, 4000, 0, nullptr);
  EXPECT_TRUE(contains(memento_last_error(), "not freed")) << memento_last_error();
  EXPECT_TRUE(contains(memento_last_error(), "4096")) << memento_last_error();
  EXPECT_EQ(stats().live_blocks, 1u);
  memento_free(a, -1, 0, nullptr);
  EXPECT_NE(last_error(), "");
  EXPECT_EQ(stats().live_blocks, 1u);
  memento_free(a, 4096, 0, nullptr);
  EXPECT_EQ(last_error(), "");
  EXPECT_EQ(stats().live_blocks, 0u);
}

TEST_F(CApi, FreeOnTheWrongDeviceIsReportedAndNotFreed) {
  void* a = memento_malloc(4096, 0, nullptr);
  ASSERT_NE(a, nullptr);
  memento_free(a, 4096, 1, nullptr);
  EXPECT_TRUE(contains(memento_last_error(), "device 1")) << memento_last_error();
  EXPECT_EQ(stats().live_blocks, 1u);
  memento_free(a, 4096, 0, nullptr);
  EXPECT_EQ(stats().live_blocks, 0u);
}

TEST_F(CApi, BudgetFromTheEnvironment) {
  set("MEMENTO_BUDGET", "8MiB");
  EXPECT_EQ(memento_get_budget(), 8 * kMiB) << memento_last_error();
  EXPECT_EQ(stats().budget, 8 * kMiB);
  EXPECT_EQ(memento_malloc(static_cast<ssize_t>(16 * kMiB), 0, nullptr), nullptr);
  EXPECT_TRUE(contains(memento_last_error(), "out of memory")) << memento_last_error();
  EXPECT_EQ(stats().out_of_memory, 1u);
  // Within the budget it works.
  void* p = memento_malloc(static_cast<ssize_t>(4 * kMiB), 0, nullptr);
  ASSERT_NE(p, nullptr) << memento_last_error();
  EXPECT_LE(stats().reserved, 8 * kMiB);
  memento_free(p, static_cast<ssize_t>(4 * kMiB), 0, nullptr);
}

TEST_F(CApi, BudgetFromMementoConf) {
  set("MEMENTO_CONF", "budget:16MiB");
  EXPECT_EQ(memento_get_budget(), 16 * kMiB) << memento_last_error();
}

TEST_F(CApi, SetBudget) {
  ASSERT_EQ(memento_set_budget(4 * kMiB), 0) << memento_last_error();
  EXPECT_EQ(memento_get_budget(), 4 * kMiB);
  EXPECT_EQ(memento_malloc(static_cast<ssize_t>(6 * kMiB), 0, nullptr), nullptr);
  EXPECT_TRUE(contains(memento_last_error(), "out of memory")) << memento_last_error();

  EXPECT_EQ(memento_set_budget(0), -1);
  EXPECT_NE(last_error(), "");
  EXPECT_EQ(memento_get_budget(), 4 * kMiB) << "a rejected budget leaves the old one";
  EXPECT_EQ(memento_set_budget(128 * kMiB), -1) << "more than the 64 MiB device";
  EXPECT_NE(last_error(), "");
  EXPECT_EQ(memento_get_budget(), 4 * kMiB);
  // The budget set here lasts until shutdown only: the environment rules again after it.
  memento_shutdown();
  EXPECT_EQ(memento_get_budget(), 64 * kMiB);
}

TEST_F(CApi, PercentBudgetIsOfTheDeviceCapacity) {
  set("MEMENTO_BUDGET", "50%");
  EXPECT_EQ(memento_get_budget(), 32 * kMiB) << memento_last_error();
}

TEST_F(CApi, MalformedBudgetIsReportedOnEveryCall) {
  set("MEMENTO_BUDGET", "abc");
  EXPECT_EQ(memento_malloc(1024, 0, nullptr), nullptr);
  EXPECT_TRUE(contains(memento_last_error(), "MEMENTO_BUDGET")) << memento_last_error();
  EXPECT_TRUE(contains(memento_last_error(), "abc")) << memento_last_error();
  // Not silently ignored later either.
  EXPECT_EQ(memento_get_budget(), 0u);
  EXPECT_TRUE(contains(memento_last_error(), "MEMENTO_BUDGET")) << memento_last_error();
  memento_stats s{};
  EXPECT_EQ(memento_get_stats(&s), -1);
  EXPECT_EQ(memento_empty_cache(), -1);
  // Fixing the variable recovers after shutdown.
  set("MEMENTO_BUDGET", "8MiB");
  EXPECT_EQ(memento_get_budget(), 8 * kMiB) << memento_last_error();
}

TEST_F(CApi, BudgetAboveTheDeviceCapacityIsReported) {
  set("MEMENTO_BUDGET", "1GiB");
  EXPECT_EQ(memento_malloc(1024, 0, nullptr), nullptr);
  EXPECT_TRUE(contains(memento_last_error(), "MEMENTO_BUDGET")) << memento_last_error();
}

TEST_F(CApi, MalformedDeviceIsReported) {
  set("MEMENTO_DEVICE", "tpu:0");
  EXPECT_EQ(memento_malloc(1024, 0, nullptr), nullptr);
  EXPECT_TRUE(contains(memento_last_error(), "MEMENTO_DEVICE")) << memento_last_error();
  EXPECT_TRUE(contains(memento_last_error(), "tpu")) << memento_last_error();
}

TEST_F(CApi, EmptyCacheReturnsCachedSegments) {
  void* a = memento_malloc(static_cast<ssize_t>(2 * kMiB), 0, nullptr);
  void* b = memento_malloc(1000, 0, nullptr);
  ASSERT_TRUE(a && b);
  EXPECT_GT(stats().reserved, 0u);
  memento_free(a, static_cast<ssize_t>(2 * kMiB), 0, nullptr);
  memento_free(b, 1000, 0, nullptr);
  EXPECT_GT(stats().reserved, 0u) << "freed blocks stay cached";
  EXPECT_EQ(memento_empty_cache(), 0) << memento_last_error();
  const memento_stats s = stats();
  EXPECT_EQ(s.reserved, 0u);
  EXPECT_EQ(s.segments, 0u);
  // Empty cache with live blocks keeps them.
  void* c = memento_malloc(4096, 0, nullptr);
  ASSERT_NE(c, nullptr);
  EXPECT_EQ(memento_empty_cache(), 0);
  EXPECT_EQ(stats().live_blocks, 1u);
  EXPECT_GT(stats().reserved, 0u);
  memento_free(c, 4096, 0, nullptr);
}

TEST_F(CApi, RecordStreamOnTheDefaultStream) {
  void* p = memento_malloc(4096, 0, nullptr);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(memento_record_stream(p, nullptr), 0) << memento_last_error();
  EXPECT_EQ(last_error(), "");
  memento_free(p, 4096, 0, nullptr);
  EXPECT_EQ(last_error(), "");
  EXPECT_EQ(stats().live_blocks, 0u);
}

TEST_F(CApi, RecordStreamOnAFreedPointerFails) {
  void* p = memento_malloc(4096, 0, nullptr);
  ASSERT_NE(p, nullptr);
  memento_free(p, 4096, 0, nullptr);
  EXPECT_EQ(memento_record_stream(p, nullptr), -1);
  EXPECT_NE(last_error(), "");
}

TEST_F(CApi, UnknownStreamHandleIsReported) {
  int not_a_stream = 0;
  auto bogus = reinterpret_cast<memento_stream_t>(&not_a_stream);
  EXPECT_EQ(memento_malloc(4096, 0, bogus), nullptr);
  EXPECT_NE(last_error(), "");
  EXPECT_EQ(stats().allocations, 0u);
}

TEST_F(CApi, GetStatsRejectsNull) {
  EXPECT_EQ(memento_get_stats(nullptr), -1);
  EXPECT_NE(last_error(), "");
}

TEST_F(CApi, ShutdownFreesLiveAllocationsAndRereadsTheEnvironment) {
  void* p = memento_malloc(4096, 0, nullptr);
  ASSERT_NE(p, nullptr);
  memento_shutdown();  // reports the live block and frees it
  EXPECT_EQ(stats().live_blocks, 0u);
  EXPECT_EQ(stats().allocations, 0u) << "a fresh allocator after shutdown";
  set("MEMENTO_BUDGET", "2MiB");
  EXPECT_EQ(memento_get_budget(), 2 * kMiB);
  memento_shutdown();
  memento_shutdown();  // twice is harmless
}

TEST_F(CApi, LastErrorIsPerThread) {
  void* p = memento_malloc(64, 0, nullptr);
  ASSERT_NE(p, nullptr);
  ASSERT_EQ(last_error(), "");

  std::string other_error;
  std::thread([&] {
    EXPECT_EQ(memento_malloc(-1, 0, nullptr), nullptr);
    other_error = memento_last_error();
  }).join();
  EXPECT_TRUE(other_error.find("negative size") != std::string::npos) << other_error;
  EXPECT_EQ(last_error(), "") << "an error on another thread showed on this one";

  // And the other way round: this thread's error is not another thread's.
  EXPECT_EQ(memento_malloc(-2, 0, nullptr), nullptr);
  ASSERT_NE(last_error(), "");
  std::string seen_elsewhere = "unset";
  std::thread([&] { seen_elsewhere = memento_last_error(); }).join();
  EXPECT_EQ(seen_elsewhere, "");
  memento_free(p, 64, 0, nullptr);
}

TEST_F(CApi, ConcurrentMallocFreeFromManyThreads) {
  constexpr int kThreads = 4;
  constexpr int kRounds = 200;
  std::vector<std::thread> threads;
  std::vector<int> failures(kThreads, 0);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([t, &failures] {
      for (int r = 0; r < kRounds; ++r) {
        const auto size = static_cast<ssize_t>(512 * (1 + (r * 7 + t) % 64));
        void* p = memento_malloc(size, 0, nullptr);
        if (p == nullptr) {
          ++failures[static_cast<std::size_t>(t)];
          continue;
        }
        std::memset(p, t, static_cast<std::size_t>(size));
        memento_free(p, size, 0, nullptr);
        if (memento_last_error()[0] != '\0') ++failures[static_cast<std::size_t>(t)];
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(failures[static_cast<std::size_t>(t)], 0) << t;
  const memento_stats s = stats();
  EXPECT_EQ(s.live_blocks, 0u);
  EXPECT_EQ(s.allocations, static_cast<std::size_t>(kThreads * kRounds));
  EXPECT_EQ(s.frees, static_cast<std::size_t>(kThreads * kRounds));
}

// Regression: memento_shutdown() must not tear down an instance that calls on other
// threads are still using.
TEST_F(CApi, ShutdownConcurrentWithCallsDoesNotCrash) {
  ::testing::FLAGS_gtest_death_test_style = "threadsafe";
  EXPECT_EXIT(
      {
        std::atomic<bool> stop{false};
        std::vector<std::thread> threads;
        for (int t = 0; t < 4; ++t) {
          threads.emplace_back([&stop] {
            while (!stop.load()) {
              // After a shutdown the pointer may belong to the old instance; the new one then
              // reports a foreign free, which is fine. Crashing is not.
              void* p = memento_malloc(4096, 0, nullptr);
              if (p != nullptr) memento_free(p, 4096, 0, nullptr);
            }
          });
        }
        for (int i = 0; i < 2000; ++i) {
          memento_shutdown();
          std::this_thread::sleep_for(std::chrono::microseconds(50));
        }
        stop.store(true);
        for (auto& th : threads) th.join();
        std::exit(0);
      },
      ::testing::ExitedWithCode(0), "");
}

}  // namespace
