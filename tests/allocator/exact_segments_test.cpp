// AllocatorOptions::exact_segments: the counted memory model of `memento replay`. Every
// allocation is a segment of exactly its size, given back at free, so reserved == live bytes.
#include <gtest/gtest.h>

#include <memory>
#include <vector>

#include "memento/backends.hpp"
#include "memento/caching_allocator.hpp"
#include "memento/device_profile.hpp"
#include "memento/error.hpp"

namespace memento {
namespace {

TEST(ExactSegments, ReservedBytesAreTheLiveBytes) {
  auto backend = make_sim_backend(find_device_profile("a100-40gb"));
  CachingAllocator alloc(*backend, AllocatorOptions{0, true});
  std::vector<void*> blocks;
  std::size_t live = 0;
  for (std::size_t bytes : {1u, 513u, 4096u, 3u << 20, (5u << 20) + 7}) {
    blocks.push_back(alloc.allocate(bytes));
    live += bytes;
    const AllocatorStats s = alloc.stats();
    EXPECT_EQ(s.reserved.current, live);
    EXPECT_EQ(s.allocated.current, live);
    EXPECT_EQ(s.segments.current, blocks.size());
  }
  alloc.deallocate(blocks[1]);
  live -= 513;
  EXPECT_EQ(alloc.stats().reserved.current, live);  // back at once: no cache
  for (std::size_t i = 0; i < blocks.size(); ++i)
    if (i != 1) alloc.deallocate(blocks[i]);
  const AllocatorStats s = alloc.stats();
  EXPECT_EQ(s.reserved.current, 0u);
  EXPECT_EQ(s.segments.current, 0u);
  EXPECT_EQ(s.reserved.peak, 1u + 513 + 4096 + (3u << 20) + (5u << 20) + 7);
}

TEST(ExactSegments, TryAllocateTakesExactlyWhatIsLeft) {
  auto backend = make_sim_backend(find_device_profile("a100-40gb"));
  CachingAllocator alloc(*backend, AllocatorOptions{1000, true});
  int calls = 0;
  alloc.add_pressure_handler([&](std::size_t, Stream) -> std::size_t {
    ++calls;
    return 0;
  });
  void* a = alloc.try_allocate(600);
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(alloc.try_allocate(401), nullptr);  // one byte over: no pressure round
  void* b = alloc.try_allocate(400);            // exactly the rest
  EXPECT_NE(b, nullptr);
  EXPECT_EQ(alloc.stats().reserved.current, 1000u);
  EXPECT_EQ(calls, 0);
  alloc.deallocate(a);
  alloc.deallocate(b);
}

TEST(ExactSegments, TheBudgetIsExactAndPressureHandlersFreeMemory) {
  auto backend = make_sim_backend(find_device_profile("a100-40gb"));
  CachingAllocator alloc(*backend, AllocatorOptions{3000, true});
  void* a = alloc.allocate(1000);
  void* b = alloc.allocate(2000);  // exactly the budget: no rounding to 512 or to segments
  EXPECT_THROW((void)alloc.allocate(1), OutOfMemory);
  alloc.add_pressure_handler([&](std::size_t, Stream) {
    if (a == nullptr) return std::size_t{0};
    alloc.deallocate(a);
    a = nullptr;
    return std::size_t{1000};
  });
  void* c = alloc.allocate(1000);
  EXPECT_EQ(alloc.stats().reserved.current, 3000u);
  alloc.deallocate(b);
  alloc.deallocate(c);
}

TEST(ExactSegments, WorksOnTheHostBackendToo) {
  // Real memory: the segment goes back only after its stream's work, so this is a plain
  // functional check that nothing is touched after free (ASan and TSan builds).
  HostBackendOptions options;
  options.capacity = std::size_t{64} << 20;
  auto backend = make_host_backend(options);
  CachingAllocator alloc(*backend, AllocatorOptions{0, true});
  void* p = alloc.allocate(10000);
  EXPECT_EQ(alloc.stats().reserved.current, 10000u);
  alloc.deallocate(p);
  EXPECT_EQ(alloc.stats().reserved.current, 0u);
}

}  // namespace
}  // namespace memento
