// Pressure handlers: order, removal while running, re-entrancy.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "backend_types.hpp"
#include "memento/caching_allocator.hpp"
#include "memento/error.hpp"

namespace memento {
namespace {

constexpr std::size_t MiB = std::size_t{1} << 20;

template <typename T>
class PressureHandlers : public testing::BackendTest<T> {};

TYPED_TEST_SUITE(PressureHandlers, testing::AllBackendTypes, testing::BackendTypeNames);

TYPED_TEST(PressureHandlers, TryAllocateNeverCallsThem) {
  CachingAllocator alloc(*this->backend_, {.budget = 8 * MiB});
  int calls = 0;
  alloc.add_pressure_handler([&](std::size_t, Stream) -> std::size_t {
    ++calls;
    return 0;
  });
  void* a = alloc.try_allocate(6 * MiB);
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(alloc.try_allocate(4 * MiB), nullptr);   // would need pressure: no
  EXPECT_EQ(alloc.try_allocate(16 * MiB), nullptr);  // beyond the budget: no error either
  EXPECT_EQ(alloc.try_allocate(0), nullptr);
  void* b = alloc.try_allocate(MiB);  // fits beside
  EXPECT_NE(b, nullptr);
  EXPECT_EQ(calls, 0);
  EXPECT_EQ(alloc.stats().pressure_calls, 0u);
  EXPECT_EQ(alloc.stats().out_of_memory, 0u);
  alloc.deallocate(a);
  void* c = alloc.try_allocate(4 * MiB);  // from the cached block
  EXPECT_NE(c, nullptr);
  alloc.deallocate(b);
  alloc.deallocate(c);
}

TYPED_TEST(PressureHandlers, AreCalledInOrderUntilOneFreesEnough) {
  CachingAllocator alloc(*this->backend_, {.budget = 8 * MiB});
  std::vector<void*> blocks;
  for (int i = 0; i < 4; ++i) blocks.push_back(alloc.allocate(2 * MiB));
  std::vector<int> calls;
  alloc.add_pressure_handler([&](std::size_t, Stream) -> std::size_t {
    calls.push_back(1);
    alloc.deallocate(blocks.back());  // 2 MiB: less than asked
    blocks.pop_back();
    return 2 * MiB;
  });
  alloc.add_pressure_handler([&](std::size_t needed, Stream) -> std::size_t {
    calls.push_back(2);
    std::size_t freed = 0;
    while (freed < needed && !blocks.empty()) {
      alloc.deallocate(blocks.back());
      blocks.pop_back();
      freed += 2 * MiB;
    }
    return freed;
  });
  void* p = alloc.allocate(4 * MiB);
  EXPECT_EQ(calls, (std::vector<int>{1, 2}));
  EXPECT_EQ(alloc.stats().pressure_calls, 2u);
  alloc.deallocate(p);
  for (void* b : blocks) alloc.deallocate(b);
}

TYPED_TEST(PressureHandlers, AHandlersOwnAllocationsGetNoNestedRound) {
  CachingAllocator alloc(*this->backend_, {.budget = 4 * MiB});
  void* a = alloc.allocate(4 * MiB);
  int calls = 0;
  bool nested_oom = false;
  alloc.add_pressure_handler([&](std::size_t, Stream) -> std::size_t {
    ++calls;
    try {
      (void)alloc.allocate(MiB);  // would recurse into this handler without the guard
    } catch (const OutOfMemory&) {
      nested_oom = true;
    }
    return 0;
  });
  EXPECT_THROW((void)alloc.allocate(MiB), OutOfMemory);
  EXPECT_EQ(calls, 1);
  EXPECT_TRUE(nested_oom);
  alloc.deallocate(a);
}

TYPED_TEST(PressureHandlers, RemovingFromInsideAHandlerIsAnError) {
  CachingAllocator alloc(*this->backend_, {.budget = 2 * MiB});
  void* a = alloc.allocate(2 * MiB);
  int id = 0;
  bool rejected = false;
  id = alloc.add_pressure_handler([&](std::size_t, Stream) -> std::size_t {
    try {
      alloc.remove_pressure_handler(id);
    } catch (const LogicError&) {
      rejected = true;
    }
    return 0;
  });
  EXPECT_THROW((void)alloc.allocate(MiB), OutOfMemory);
  EXPECT_TRUE(rejected);
  EXPECT_THROW(alloc.remove_pressure_handler(id + 100), LogicError);
  alloc.remove_pressure_handler(id);
  alloc.deallocate(a);
}

TEST(PressureHandlersHost, RemoveWaitsForARunningCall) {
  auto backend = make_host_backend({.capacity = 64 * MiB, .link_bandwidth = 0});
  CachingAllocator alloc(*backend, {.budget = 2 * MiB});
  void* a = alloc.allocate(2 * MiB);
  std::atomic<bool> entered{false};
  std::atomic<bool> finished{false};
  int id = alloc.add_pressure_handler([&](std::size_t, Stream) -> std::size_t {
    entered = true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    finished = true;
    return 0;
  });
  std::thread t([&] { EXPECT_THROW((void)alloc.allocate(MiB), OutOfMemory); });
  while (!entered) std::this_thread::yield();
  alloc.remove_pressure_handler(id);
  EXPECT_TRUE(finished) << "remove returned while the handler was still running";
  t.join();
  alloc.deallocate(a);
}

}  // namespace
}  // namespace memento
