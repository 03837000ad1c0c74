// Several threads allocating and freeing on their own streams at once, each checking that
// nobody else wrote into its blocks. Run under ThreadSanitizer in CI.
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <thread>
#include <vector>

#include "backend_types.hpp"
#include "memento/caching_allocator.hpp"
#include "memento/error.hpp"

namespace memento {
namespace {

TEST(AllocatorThreads, ConcurrentAllocFreeOnSeveralStreamsKeepsBlocksPrivate) {
  auto backend = make_host_backend({.capacity = std::size_t{512} << 20, .link_bandwidth = 0});
  CachingAllocator alloc(*backend, {.budget = std::size_t{256} << 20});
  const std::uint64_t seed = testing::test_seed();
  constexpr int kThreads = 4;
  constexpr int kSteps = 1500;
  std::vector<Stream> streams;
  for (int t = 0; t < kThreads; ++t) streams.push_back(backend->create_stream());

  std::vector<std::thread> threads;
  std::vector<std::string> failures(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(seed + static_cast<std::uint64_t>(t));
      auto tag = static_cast<unsigned char>(0x10 + t);
      std::vector<std::pair<unsigned char*, std::size_t>> mine;
      for (int i = 0; i < kSteps && failures[t].empty(); ++i) {
        if (mine.empty() || rng() % 2 == 0) {
          std::size_t n = 1 + rng() % (rng() % 8 == 0 ? (3u << 20) : 20000u);
          // Half the allocations go through the thread's stream, half the default one, so
          // blocks cross streams and threads.
          Stream s = rng() % 2 ? streams[t] : Backend::default_stream();
          unsigned char* p = nullptr;
          try {
            p = static_cast<unsigned char*>(alloc.allocate(n, s));
          } catch (const OutOfMemory& e) {
            failures[t] = e.what();
            break;
          }
          std::memset(p, tag, n);
          mine.emplace_back(p, n);
        } else {
          std::size_t k = rng() % mine.size();
          auto [p, n] = mine[k];
          for (std::size_t j = 0; j < n; j += 97)
            if (p[j] != tag) {
              failures[t] = "block overwritten by another thread";
              break;
            }
          alloc.deallocate(p);
          mine[k] = mine.back();
          mine.pop_back();
        }
      }
      for (auto [p, n] : mine) alloc.deallocate(p);
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(failures[t], "") << "thread " << t;
  AllocatorStats s = alloc.stats();
  EXPECT_EQ(s.live_blocks.current, 0u);
  EXPECT_EQ(s.allocated.current, 0u);
  EXPECT_LE(s.reserved.peak, s.budget);
}

TEST(AllocatorThreads, KernelsOnStreamsWriteTheirBlocksWhileOthersAllocate) {
  auto backend = make_host_backend({.capacity = std::size_t{256} << 20, .link_bandwidth = 0});
  CachingAllocator alloc(*backend, {.budget = std::size_t{64} << 20});
  Stream a = backend->create_stream();
  Stream b = backend->create_stream();
  struct Filled {
    char* p;
    char value;
  };
  std::vector<Filled> blocks;
  for (int i = 0; i < 200; ++i) {
    Stream s = i % 2 ? a : b;
    auto* p = static_cast<char*>(alloc.allocate(64 * 1024, s));
    char value = static_cast<char>(i);
    backend->launch(
        s,
        Kernel{
            "fill", {0, 65536, false}, [p, value] { std::memset(p, value, 64 * 1024); }, nullptr});
    blocks.push_back({p, value});
    if (blocks.size() > 16) {
      alloc.deallocate(blocks.front().p);  // stream-ordered free, kernels still queued
      blocks.erase(blocks.begin());
    }
  }
  backend->synchronize_all();
  // Every block still held has its own kernel's value: no reused block was overwritten.
  for (const Filled& f : blocks)
    for (std::size_t j = 0; j < 64 * 1024; j += 61) ASSERT_EQ(f.p[j], f.value);
  for (const Filled& f : blocks) alloc.deallocate(f.p);
  EXPECT_EQ(alloc.stats().live_blocks.current, 0u);
}

}  // namespace
}  // namespace memento
