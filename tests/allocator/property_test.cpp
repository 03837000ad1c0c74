// Thousands of random operations against a reference model, checked after every step.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <numeric>
#include <random>
#include <vector>

#include "allocator/size_policy.hpp"
#include "backend_types.hpp"
#include "memento/caching_allocator.hpp"
#include "memento/error.hpp"

namespace memento {
namespace {

/// What the allocator must agree with: the live allocations and their sizes.
struct Reference {
  struct Live {
    std::size_t requested;
    std::size_t block;
    Stream stream;
  };
  std::map<char*, Live> live;
  std::size_t requested_sum() const {
    std::size_t n = 0;
    for (auto& [p, l] : live) n += l.requested;
    return n;
  }
  std::size_t block_sum() const {
    std::size_t n = 0;
    for (auto& [p, l] : live) n += l.block;
    return n;
  }
};

template <typename T>
class AllocatorProperty : public testing::BackendTest<T> {};

TYPED_TEST_SUITE(AllocatorProperty, testing::AllBackendTypes, testing::BackendTypeNames);

void check_invariants(const CachingAllocator& alloc, const Reference& ref, std::uint64_t seed,
                      int step) {
  SCOPED_TRACE(::testing::Message() << "seed " << seed << " step " << step);
  AllocatorStats s = alloc.stats();
  ASSERT_LE(s.reserved.current, s.budget);
  ASSERT_EQ(s.live_blocks.current, ref.live.size());
  ASSERT_EQ(s.requested.current, ref.requested_sum());
  ASSERT_EQ(s.allocated.current, ref.block_sum());
  ASSERT_LE(s.allocated.current + s.free_bytes, s.reserved.current);
  // No two live blocks overlap (the reference is ordered by address).
  char* end = nullptr;
  for (auto& [p, l] : ref.live) {
    ASSERT_GE(p, end) << "live blocks overlap at " << static_cast<void*>(p);
    end = p + l.block;
  }
  // The snapshot tiles every segment exactly and agrees on what is allocated.
  std::size_t snap_alloc = 0;
  std::size_t snap_reserved = 0;
  for (const SegmentSnapshot& seg : alloc.snapshot()) {
    std::uintptr_t cursor = seg.address;
    for (const BlockSnapshot& b : seg.blocks) {
      ASSERT_EQ(b.address, cursor);
      cursor += b.size;
      if (b.allocated) {
        snap_alloc += b.size;
        auto it = ref.live.find(reinterpret_cast<char*>(b.address));
        ASSERT_NE(it, ref.live.end());
        ASSERT_EQ(it->second.block, b.size);
      }
    }
    ASSERT_EQ(cursor, seg.address + seg.size);
    snap_reserved += seg.size;
  }
  ASSERT_EQ(snap_alloc, s.allocated.current);
  ASSERT_EQ(snap_reserved, s.reserved.current);
}

std::size_t block_size_of(const CachingAllocator& alloc, char* p) {
  for (const SegmentSnapshot& seg : alloc.snapshot())
    for (const BlockSnapshot& b : seg.blocks)
      if (b.address == reinterpret_cast<std::uintptr_t>(p)) return b.size;
  ADD_FAILURE() << "allocated pointer missing from the snapshot";
  return 0;
}

bool in_small_segment(const CachingAllocator& alloc, char* p) {
  auto a = reinterpret_cast<std::uintptr_t>(p);
  for (const SegmentSnapshot& seg : alloc.snapshot())
    if (a >= seg.address && a < seg.address + seg.size) return seg.small_pool;
  ADD_FAILURE() << "pointer in no segment";
  return false;
}

/// The largest run of adjacent free blocks in segments a request of this pool may use
/// (small requests may use any segment; large ones only large segments).
std::size_t largest_free_run(const CachingAllocator& alloc, bool small_request) {
  std::size_t best = 0;
  for (const SegmentSnapshot& seg : alloc.snapshot()) {
    if (seg.small_pool && !small_request) continue;
    std::size_t run = 0;
    for (const BlockSnapshot& b : seg.blocks) {
      run = b.allocated || b.pending ? 0 : run + b.size;
      best = std::max(best, run);
    }
  }
  return best;
}

TYPED_TEST(AllocatorProperty, RandomOperationsMatchTheReference) {
  std::uint64_t seed = testing::test_seed();
  std::mt19937_64 rng(seed);
  CachingAllocator alloc(*this->backend_, {.budget = std::size_t{96} << 20});
  std::vector<Stream> streams = {Backend::default_stream(), this->backend_->create_stream()};
  Reference ref;
  std::vector<char*> order;
  struct LastFree {
    std::size_t requested = 0;
    Stream stream{};
    bool valid = false;
    bool small_pool = false;  // where the block lived: a small request may borrow a large one
  } last_free;
  std::size_t reuse_checks = 0;

  for (int step = 0; step < 4000; ++step) {
    int op = static_cast<int>(rng() % 100);
    if (op < 50 || order.empty()) {
      bool repeat = last_free.valid && rng() % 3 == 0;
      std::size_t n = repeat ? last_free.requested
                             : (rng() % 5 == 0 ? 1 + rng() % (6u << 20) : 1 + rng() % 300000);
      Stream s = repeat ? last_free.stream : streams[rng() % streams.size()];
      std::size_t segments_before = alloc.stats().segment_allocs;
      std::size_t segment_frees_before = alloc.stats().segment_frees;
      char* p = nullptr;
      try {
        p = static_cast<char*>(alloc.allocate(n, s));
      } catch (const OutOfMemory& e) {
        // The pressure path gives wholly free segments back before failing: if the block
        // freed last went with them, a repeat of its size may need a new segment.
        if (alloc.stats().segment_frees != segment_frees_before) last_free.valid = false;
        // Only legitimate when neither unreserved budget nor a contiguous free run that
        // could serve the request is left (the allocator does not move live blocks).
        std::size_t size = sizes::block_size(n);
        AllocatorStats st = alloc.stats();
        ASSERT_LT(st.budget - st.reserved.current, size) << "seed " << seed << ": " << e.what();
        ASSERT_LT(largest_free_run(alloc, sizes::is_small(size)), size)
            << "seed " << seed << ": OOM with a free run large enough: " << e.what();
        continue;
      }
      if (repeat && last_free.small_pool == sizes::is_small(sizes::block_size(n))) {
        // A block of exactly this size and stream was just freed: it must be reused.
        ++reuse_checks;
        ASSERT_EQ(alloc.stats().segment_allocs, segments_before)
            << "seed " << seed << " step " << step << ": freed memory was not reused";
      }
      last_free.valid = false;
      std::size_t block = block_size_of(alloc, p);
      // Rounded up to 512 bytes; a cached block is split unless the rest is too small to keep.
      ASSERT_GE(block, sizes::block_size(n));
      ASSERT_LE(block - sizes::block_size(n), sizes::kSmallRequest) << "seed " << seed;
      ref.live.emplace(p, Reference::Live{n, block, s});
      order.push_back(p);
    } else if (op < 95) {
      std::size_t k = rng() % order.size();
      char* p = order[k];
      order[k] = order.back();
      order.pop_back();
      last_free = {ref.live.at(p).requested, ref.live.at(p).stream, true,
                   in_small_segment(alloc, p)};
      alloc.deallocate(p);
      ref.live.erase(p);
    } else {
      alloc.release_cached();
      last_free.valid = false;
    }
    check_invariants(alloc, ref, seed, step);
    if (::testing::Test::HasFatalFailure()) return;
  }
  EXPECT_GT(reuse_checks, 100u);
  for (char* p : order) alloc.deallocate(p);
  EXPECT_EQ(alloc.stats().allocated.current, 0u);
}

}  // namespace
}  // namespace memento
