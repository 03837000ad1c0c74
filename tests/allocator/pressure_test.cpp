// The pressure path: reuse, release cached segments, ask handlers, retry, else OutOfMemory.
#include <gtest/gtest.h>

#include <deque>

#include "allocator/size_policy.hpp"
#include "backend_types.hpp"
#include "memento/caching_allocator.hpp"
#include "memento/error.hpp"

namespace memento {
namespace {

constexpr std::size_t MiB = std::size_t{1} << 20;
constexpr std::size_t KiB = std::size_t{1} << 10;

template <typename T>
class AllocatorPressure : public testing::BackendTest<T> {};

TYPED_TEST_SUITE(AllocatorPressure, testing::AllBackendTypes, testing::BackendTypeNames);

TYPED_TEST(AllocatorPressure, HandlerIsAskedForTheRequestAndTheRetrySucceeds) {
  CachingAllocator alloc(*this->backend_, {.budget = 8 * MiB});
  std::deque<void*> evictable;
  for (int i = 0; i < 4; ++i) evictable.push_back(alloc.allocate(2 * MiB));
  EXPECT_EQ(alloc.stats().reserved.current, 8 * MiB);

  std::vector<std::size_t> asked;
  std::vector<Stream> asked_streams;
  alloc.add_pressure_handler([&](std::size_t needed, Stream s) -> std::size_t {
    asked.push_back(needed);
    asked_streams.push_back(s);
    std::size_t freed = 0;
    while (freed < needed && !evictable.empty()) {
      alloc.deallocate(evictable.front());
      evictable.pop_front();
      freed += 2 * MiB;
    }
    return freed;
  });

  Stream s = this->backend_->create_stream();
  void* big = alloc.allocate(3 * MiB + 100, s);
  ASSERT_NE(big, nullptr);
  ASSERT_EQ(asked.size(), 1u);
  EXPECT_EQ(asked[0], sizes::block_size(3 * MiB + 100));
  EXPECT_EQ(asked_streams[0], s);
  AllocatorStats st = alloc.stats();
  EXPECT_EQ(st.pressure_calls, 1u);
  EXPECT_EQ(st.pressure_freed, 4 * MiB);
  EXPECT_LE(st.reserved.current, 8 * MiB);
  EXPECT_EQ(evictable.size(), 2u);
  alloc.deallocate(big);
  for (void* p : evictable) alloc.deallocate(p);
}

TYPED_TEST(AllocatorPressure, CachedSegmentsAreReleasedBeforeHandlersAreCalled) {
  CachingAllocator alloc(*this->backend_, {.budget = 8 * MiB});
  void* a = alloc.allocate(4 * MiB);
  void* b = alloc.allocate(4 * MiB);
  alloc.deallocate(a);
  alloc.deallocate(b);
  int calls = 0;
  alloc.add_pressure_handler([&](std::size_t, Stream) -> std::size_t {
    ++calls;
    return 0;
  });
  void* c = alloc.allocate(6 * MiB);  // needs the two cached 4 MiB segments given back
  EXPECT_EQ(calls, 0);
  EXPECT_GE(alloc.stats().segment_frees, 1u);
  alloc.deallocate(c);
}

TYPED_TEST(AllocatorPressure, WithoutHandlersOutOfMemoryCarriesTheFigures) {
  CachingAllocator alloc(*this->backend_, {.budget = 8 * MiB});
  void* a = alloc.allocate(6 * MiB);
  try {
    (void)alloc.allocate(3 * MiB);
    FAIL() << "expected OutOfMemory";
  } catch (const OutOfMemory& e) {
    std::string msg = e.what();
    for (const char* part : {"cannot allocate 3.00 MiB", "(3145728 bytes)", "budget of 8.00 MiB",
                             "Allocated 6.00 MiB in 1 live blocks", "reserved 6.00 MiB",
                             "unevictable 6.00 MiB", "eviction freed 0 B"})
      EXPECT_NE(msg.find(part), std::string::npos) << "missing '" << part << "' in: " << msg;
  }
  EXPECT_EQ(alloc.stats().out_of_memory, 1u);
  alloc.deallocate(a);
}

TYPED_TEST(AllocatorPressure, HandlerThatFreesNothingEndsInOutOfMemory) {
  CachingAllocator alloc(*this->backend_, {.budget = 4 * MiB});
  void* a = alloc.allocate(4 * MiB);
  int calls = 0;
  alloc.add_pressure_handler([&](std::size_t, Stream) -> std::size_t {
    ++calls;
    return 0;
  });
  alloc.set_evictable_bytes_probe([] { return std::size_t{1} * MiB; });
  try {
    (void)alloc.allocate(MiB);
    FAIL() << "expected OutOfMemory";
  } catch (const OutOfMemory& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("nothing left to evict"), std::string::npos) << msg;
    EXPECT_NE(msg.find("unevictable 3.00 MiB"), std::string::npos) << msg;
  }
  EXPECT_EQ(calls, 1);
  alloc.deallocate(a);
}

TYPED_TEST(AllocatorPressure, BudgetChangesAreValidatedAndEnforced) {
  CachingAllocator alloc(*this->backend_, {.budget = 8 * MiB});
  EXPECT_THROW(alloc.set_budget(0), LogicError);
  EXPECT_THROW(alloc.set_budget(this->backend_->info().capacity + 1), LogicError);
  void* a = alloc.allocate(2 * MiB);
  alloc.deallocate(a);
  alloc.set_budget(2 * MiB);
  EXPECT_EQ(alloc.budget(), 2 * MiB);
  EXPECT_THROW((void)alloc.allocate(3 * MiB), OutOfMemory);
  void* b = alloc.allocate(2 * MiB);
  EXPECT_LE(alloc.stats().reserved.current, 2 * MiB);
  alloc.deallocate(b);
}

// A budget lowered below segments that hold live blocks: they stay reserved, and the cached
// rest of them serves only up to the new budget in allocated bytes (the soak found a step
// at a lowered budget using all of the old one).
TYPED_TEST(AllocatorPressure, ALoweredBudgetCapsAllocatedBytesWhileLiveSegmentsStay) {
  CachingAllocator alloc(*this->backend_, {.budget = 8 * MiB});
  void* a = alloc.allocate(256 * KiB);  // a 2 MiB small segment
  alloc.set_budget(1 * MiB);
  EXPECT_EQ(alloc.stats().reserved.current, 2 * MiB);  // held by `a`
  void* b = alloc.allocate(512 * KiB);                 // within the budget: from the cache
  EXPECT_THROW((void)alloc.allocate(512 * KiB), OutOfMemory);
  EXPECT_LE(alloc.stats().allocated.current, 1 * MiB);
  alloc.deallocate(a);
  void* c = alloc.allocate(512 * KiB);  // `a`'s bytes count no more
  alloc.deallocate(b);
  alloc.deallocate(c);
  alloc.release_cached();  // the empty segment goes back; a new one within the budget
  c = alloc.allocate(1 * MiB);
  EXPECT_LE(alloc.stats().reserved.current, 1 * MiB);
  alloc.deallocate(c);
}

}  // namespace
}  // namespace memento
