// The caching allocator's contract, run over every backend.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <limits>
#include <map>
#include <random>
#include <thread>
#include <vector>

#include "backend_types.hpp"
#include "memento/caching_allocator.hpp"
#include "memento/error.hpp"

namespace memento {
namespace {

using testing::test_seed;

template <typename T>
class AllocatorConformance : public testing::BackendTest<T> {};

TYPED_TEST_SUITE(AllocatorConformance, testing::AllBackendTypes, testing::BackendTypeNames);

bool overlaps(const std::map<char*, std::size_t>& live, char* p, std::size_t n) {
  auto it = live.upper_bound(p);
  if (it != live.end() && it->first < p + n) return true;
  if (it != live.begin()) {
    --it;
    if (it->first + it->second > p) return true;
  }
  return false;
}

TYPED_TEST(AllocatorConformance, ManySizesAreAlignedDistinctAndAccounted) {
  CachingAllocator alloc(*this->backend_);
  const std::vector<std::size_t> sizes = {1,
                                          511,
                                          512,
                                          513,
                                          4096,
                                          (1 << 20) - 1,
                                          1 << 20,
                                          (1 << 20) + 1,
                                          3u << 20,
                                          10u << 20,
                                          (25u << 20) + 7,
                                          200};
  std::map<char*, std::size_t> live;
  std::size_t requested = 0;
  for (std::size_t n : sizes) {
    auto* p = static_cast<char*>(alloc.allocate(n));
    ASSERT_NE(p, nullptr) << n;
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(p) % 512, 0u) << n;
    EXPECT_FALSE(overlaps(live, p, n)) << n;
    EXPECT_EQ(alloc.requested_size(p), n);
    live.emplace(p, n);
    requested += n;
  }
  AllocatorStats s = alloc.stats();
  EXPECT_EQ(s.requested.current, requested);
  EXPECT_EQ(s.live_blocks.current, sizes.size());
  EXPECT_GE(s.allocated.current, requested);
  EXPECT_LE(s.allocated.current, s.reserved.current);
  for (auto& [p, n] : live) alloc.deallocate(p);
  s = alloc.stats();
  EXPECT_EQ(s.allocated.current, 0u);
  EXPECT_EQ(s.requested.current, 0u);
  EXPECT_EQ(s.live_blocks.current, 0u);
  EXPECT_EQ(s.frees, sizes.size());
  alloc.release_cached();
  EXPECT_EQ(alloc.stats().reserved.current, 0u);
  EXPECT_EQ(this->backend_->segment_bytes(), 0u);
}

TYPED_TEST(AllocatorConformance, ZeroSizeIsNullAndNullFreeIsANoOp) {
  CachingAllocator alloc(*this->backend_);
  EXPECT_EQ(alloc.allocate(0), nullptr);
  EXPECT_NO_THROW(alloc.deallocate(nullptr));
  EXPECT_EQ(alloc.stats().allocations, 0u);
}

TYPED_TEST(AllocatorConformance, HugeSizesThrowOutOfMemoryWithFigures) {
  CachingAllocator alloc(*this->backend_, {.budget = std::size_t{64} << 20});
  for (std::size_t n :
       {std::numeric_limits<std::size_t>::max(), std::numeric_limits<std::size_t>::max() / 2 + 1,
        (std::size_t{64} << 20) + 1}) {
    try {
      (void)alloc.allocate(n);
      FAIL() << "allocate(" << n << ") should have thrown";
    } catch (const OutOfMemory& e) {
      std::string msg = e.what();
      EXPECT_NE(msg.find(std::to_string(n)), std::string::npos) << msg;
      EXPECT_NE(msg.find("budget"), std::string::npos) << msg;
    }
  }
  EXPECT_EQ(alloc.stats().reserved.current, 0u);
  void* p = alloc.allocate(1 << 20);  // still usable afterwards
  EXPECT_NE(p, nullptr);
  alloc.deallocate(p);
}

TYPED_TEST(AllocatorConformance, DoubleAndForeignFreesAreRejectedWithoutDamage) {
  CachingAllocator alloc(*this->backend_);
  auto* p = static_cast<char*>(alloc.allocate(4096));
  auto* q = static_cast<char*>(alloc.allocate(4096));
  alloc.deallocate(p);
  EXPECT_THROW(alloc.deallocate(p), LogicError);        // double free
  EXPECT_THROW(alloc.deallocate(q + 512), LogicError);  // interior pointer
  int local = 0;
  EXPECT_THROW(alloc.deallocate(&local), LogicError);  // foreign
  EXPECT_EQ(alloc.stats().live_blocks.current, 1u);
  EXPECT_EQ(alloc.requested_size(q), 4096u);
  alloc.deallocate(q);
  EXPECT_EQ(alloc.stats().live_blocks.current, 0u);
}

TYPED_TEST(AllocatorConformance, SameStreamReuseIsImmediate) {
  CachingAllocator alloc(*this->backend_);
  Stream s = this->backend_->create_stream();
  for (std::size_t n : {std::size_t{4096}, std::size_t{3} << 20}) {
    void* p = alloc.allocate(n, s);
    alloc.deallocate(p);
    std::size_t segments = alloc.stats().segment_allocs;
    void* q = alloc.allocate(n, s);
    EXPECT_EQ(q, p) << n;
    EXPECT_EQ(alloc.stats().segment_allocs, segments);
    alloc.deallocate(q);
  }
}

TYPED_TEST(AllocatorConformance, CrossStreamReuseWaitsForTheFreeingStream) {
  // Budget of one segment: the second stream can only get the memory the first freed, so
  // the allocator must order it after the first stream's work.
  CachingAllocator alloc(*this->backend_, {.budget = std::size_t{2} << 20});
  Stream a = this->backend_->create_stream();
  Stream b = this->backend_->create_stream();
  Event done = this->backend_->create_event();
  void* p = alloc.allocate(std::size_t{2} << 20, a);
  this->backend_->launch(a,
                         Kernel{"busy",
                                {4e12, 0, false},
                                [] { std::this_thread::sleep_for(std::chrono::milliseconds(30)); },
                                [](void*) {}});
  this->backend_->record(done, a);
  alloc.deallocate(p);
  void* q = alloc.allocate(std::size_t{2} << 20, b);
  EXPECT_NE(q, nullptr);
  // Handed over with a device-side wait: b's work from now on runs after a's.
  EXPECT_EQ(alloc.stats().stream_syncs, 0u) << "the host waited instead of the stream";
  EXPECT_GE(alloc.stats().stream_waits, 1u);
  Event after = this->backend_->create_event();
  this->backend_->record(after, b);
  this->backend_->synchronize(after);
  EXPECT_TRUE(this->backend_->query(done)) << "stream b may use the memory before a's work ended";
  EXPECT_LE(this->backend_->segment_bytes(), std::size_t{2} << 20);
  alloc.deallocate(q);
  this->backend_->destroy_event(after);
  this->backend_->destroy_event(done);
}

TYPED_TEST(AllocatorConformance, RecordStreamDelaysReuseUntilThatStreamIsDone) {
  constexpr std::size_t MiB = std::size_t{1} << 20;
  // One small-pool segment holding two 1 MiB blocks: no other memory to hand out.
  CachingAllocator alloc(*this->backend_, {.budget = 2 * MiB});
  Stream a = this->backend_->create_stream();
  Stream b = this->backend_->create_stream();
  Event gate = this->backend_->create_event();
  void* p = alloc.allocate(MiB, a);
  void* filler = alloc.allocate(MiB, a);
  alloc.record_stream(p, b);
  // Stream b still has work that (in a real program) reads p.
  this->backend_->launch(b,
                         Kernel{"reader",
                                {4e12, 0, false},
                                [] { std::this_thread::sleep_for(std::chrono::milliseconds(50)); },
                                [](void*) {}});
  this->backend_->record(gate, b);
  alloc.deallocate(p);
  void* q = alloc.allocate(MiB, a);
  EXPECT_EQ(q, p);
  // Stream a waits on the device for b: its work on q starts after b's reader.
  EXPECT_EQ(alloc.stats().stream_syncs, 0u);
  Event after = this->backend_->create_event();
  this->backend_->record(after, a);
  this->backend_->synchronize(after);
  EXPECT_TRUE(this->backend_->query(gate)) << "stream a may use the block while b still reads it";
  alloc.deallocate(q);
  alloc.deallocate(filler);
  this->backend_->destroy_event(after);
  this->backend_->destroy_event(gate);
}

TYPED_TEST(AllocatorConformance, AStreamThatNeverFreedStillSharesItsSegment) {
  // The unused rest of a segment grown for stream b must be usable by stream 0.
  CachingAllocator alloc(*this->backend_, {.budget = std::size_t{2} << 20});
  Stream b = this->backend_->create_stream();
  void* first = alloc.allocate(4096, b);
  void* second = alloc.allocate(4096);
  EXPECT_NE(second, nullptr);
  EXPECT_EQ(alloc.stats().segments.current, 1u);
  alloc.deallocate(second);
  alloc.deallocate(first);
}

TYPED_TEST(AllocatorConformance, FencedBlocksMoveAcrossStreamsWithoutADrain) {
  constexpr std::size_t MiB = std::size_t{1} << 20;
  CachingAllocator alloc(*this->backend_, {.budget = 4 * MiB});
  Stream a = this->backend_->create_stream();
  Stream b = this->backend_->create_stream();
  void* p = alloc.allocate(2 * MiB, a);
  alloc.deallocate(p);
  void* q = alloc.allocate(2 * MiB, b);  // p's fence is only recorded now: q is new memory
  EXPECT_NE(q, p);
  this->backend_->synchronize_all();
  void* r = alloc.allocate(2 * MiB, b);  // the fence has completed: p moves to stream b
  EXPECT_EQ(r, p);
  AllocatorStats s = alloc.stats();
  EXPECT_EQ(s.cross_stream_reuses, 1u);
  EXPECT_EQ(s.stream_syncs, 0u) << "the pressure path should not have been needed";
  alloc.deallocate(q);
  alloc.deallocate(r);
}

TYPED_TEST(AllocatorConformance, RecordStreamOfAnUnknownStreamLeavesTheBlockIntact) {
  CachingAllocator alloc(*this->backend_);
  void* p = alloc.allocate(4096);
  EXPECT_THROW(alloc.record_stream(p, Stream{777}), LogicError);
  alloc.deallocate(p);
  alloc.release_cached();
  AllocatorStats s = alloc.stats();
  EXPECT_EQ(s.live_blocks.current, 0u);
  EXPECT_EQ(s.active.current, 0u);
  EXPECT_EQ(s.reserved.current, 0u);
}

TYPED_TEST(AllocatorConformance, ActiveBytesIsTheStatsCounterWithoutTheWalk) {
  constexpr std::size_t MiB = std::size_t{1} << 20;
  CachingAllocator alloc(*this->backend_);
  EXPECT_EQ(alloc.active_bytes(), 0u);
  void* p = alloc.allocate(3 * MiB);
  void* q = alloc.allocate(5000);
  EXPECT_EQ(alloc.active_bytes(), alloc.stats().active.current);
  EXPECT_GE(alloc.active_bytes(), 3 * MiB + 5000);
  alloc.deallocate(p);
  EXPECT_EQ(alloc.active_bytes(), alloc.stats().active.current);
  alloc.deallocate(q);
  this->backend_->synchronize_all();
  alloc.release_cached();
  EXPECT_EQ(alloc.active_bytes(), 0u);
}

TYPED_TEST(AllocatorConformance, PeaksResetAndTheStatsTableNamesEveryFigure) {
  CachingAllocator alloc(*this->backend_);
  void* p = alloc.allocate(std::size_t{3} << 20);
  alloc.deallocate(p);
  AllocatorStats before = alloc.stats();
  EXPECT_EQ(before.allocated.peak, std::size_t{3} << 20);
  alloc.reset_peaks();
  AllocatorStats after = alloc.stats();
  EXPECT_EQ(after.allocated.peak, 0u);
  EXPECT_EQ(after.reserved.peak, after.reserved.current);
  std::string table = format_stats_table(before);
  for (const char* row : {"budget", "allocated", "reserved", "active", "segments", "fragmentation",
                          "cache hits", "pressure calls", "out of memory"})
    EXPECT_NE(table.find(row), std::string::npos) << row << "\n" << table;
  EXPECT_NE(table.find("3.00 MiB"), std::string::npos) << table;
}

TYPED_TEST(AllocatorConformance, RandomSequencesKeepBlocksDisjoint) {
  std::uint64_t seed = test_seed();
  std::mt19937_64 rng(seed);
  CachingAllocator alloc(*this->backend_, {.budget = std::size_t{256} << 20});
  std::vector<Stream> streams = {Backend::default_stream(), this->backend_->create_stream(),
                                 this->backend_->create_stream()};
  std::map<char*, std::size_t> live;
  std::vector<char*> order;
  for (int i = 0; i < 3000; ++i) {
    bool do_alloc = order.empty() || rng() % 100 < 55;
    if (do_alloc) {
      std::size_t n = rng() % 4 == 0 ? 1 + rng() % (8u << 20) : 1 + rng() % 65536;
      Stream s = streams[rng() % streams.size()];
      char* p = nullptr;
      try {
        p = static_cast<char*>(alloc.allocate(n, s));
      } catch (const OutOfMemory&) {
        continue;  // the budget is small on purpose
      }
      ASSERT_FALSE(overlaps(live, p, n)) << "seed " << seed << " step " << i;
      live.emplace(p, n);
      order.push_back(p);
    } else {
      std::size_t k = rng() % order.size();
      char* p = order[k];
      order[k] = order.back();
      order.pop_back();
      alloc.deallocate(p);
      live.erase(p);
    }
    ASSERT_LE(alloc.stats().reserved.current, alloc.budget()) << "seed " << seed;
  }
  for (char* p : order) alloc.deallocate(p);
  EXPECT_EQ(alloc.stats().allocated.current, 0u);
}

}  // namespace
}  // namespace memento
