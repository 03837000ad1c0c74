// Where the backend places segments does not decide which cached block the allocator reuses:
// the same program places its blocks identically whether segments come at rising addresses
// (sim) or falling ones (the host backend's mmap), so a budget evicts the same way on both.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <random>
#include <utility>
#include <vector>

#include "memento/backends.hpp"
#include "memento/caching_allocator.hpp"

namespace memento {
namespace {

constexpr std::size_t MiB = std::size_t{1} << 20;

// A sim backend whose segments come out of one region, upwards or downwards, and which
// remembers their bases in allocation order.
class PlacedSegments final : public Backend {
 public:
  explicit PlacedSegments(bool downwards)
      : inner_(make_sim_backend(find_device_profile("a100-40gb"))), downwards_(downwards) {
    region_ = static_cast<char*>(inner_->allocate_segment(kRegion));
  }
  ~PlacedSegments() override { inner_->free_segment(region_, kRegion); }

  const DeviceInfo& info() const noexcept override { return inner_->info(); }
  void* allocate_segment(std::size_t bytes) override {
    if (used_ + bytes > kRegion) return nullptr;
    char* p = downwards_ ? region_ + kRegion - used_ - bytes : region_ + used_;
    used_ += bytes;
    bases_.push_back(p);
    return p;
  }
  void free_segment(void*, std::size_t) noexcept override {}  // never reused: as sim
  std::size_t segment_bytes() const noexcept override { return used_; }
  void* allocate_pinned(std::size_t bytes, int numa) override {
    return inner_->allocate_pinned(bytes, numa);
  }
  void free_pinned(void* p, std::size_t bytes) noexcept override { inner_->free_pinned(p, bytes); }
  Stream create_stream() override { return inner_->create_stream(); }
  void* native_handle(Stream s) const override { return inner_->native_handle(s); }
  Stream stream_from_native(void* h) override { return inner_->stream_from_native(h); }
  void synchronize(Stream s) override { inner_->synchronize(s); }
  void synchronize_all() override { inner_->synchronize_all(); }
  Event create_event() override { return inner_->create_event(); }
  void destroy_event(Event e) noexcept override { inner_->destroy_event(e); }
  void record(Event e, Stream s) override { inner_->record(e, s); }
  void wait(Stream s, Event e) override { inner_->wait(s, e); }
  bool query(Event e) override { return inner_->query(e); }
  void synchronize(Event e) override { inner_->synchronize(e); }
  void copy_async(void* dst, const void* src, std::size_t n, CopyKind k, Stream s) override {
    inner_->copy_async(dst, src, n, k, s);
  }
  void launch(Stream s, Kernel k) override { inner_->launch(s, std::move(k)); }
  double now() const override { return inner_->now(); }

  /// The segment (by allocation order) and offset of a pointer.
  std::pair<std::size_t, std::size_t> place(const void* p) const {
    const char* c = static_cast<const char*>(p);
    for (std::size_t i = 0; i < bases_.size(); ++i) {
      const char* next = downwards_ ? (i == 0 ? region_ + kRegion : bases_[i - 1])
                                    : (i + 1 < bases_.size() ? bases_[i + 1] : region_ + used_);
      if (c >= bases_[i] && c < next) return {i, static_cast<std::size_t>(c - bases_[i])};
    }
    ADD_FAILURE() << "pointer outside every segment";
    return {0, 0};
  }

 private:
  static constexpr std::size_t kRegion = 512 * MiB;
  std::unique_ptr<Backend> inner_;
  bool downwards_;
  char* region_ = nullptr;
  std::size_t used_ = 0;
  std::vector<char*> bases_;
};

// A seeded mix of allocations and frees on one stream; the place of each allocation.
std::vector<std::pair<std::size_t, std::size_t>> placements(bool downwards, std::uint32_t seed) {
  PlacedSegments backend(downwards);
  std::vector<std::pair<std::size_t, std::size_t>> out;
  {
    CachingAllocator alloc(backend);
    std::mt19937 rng(seed);
    const std::size_t sizes[] = {512, 4096, 64 * 1024, 256 * 1024, 512 * 1024, 3 * MiB};
    std::vector<void*> live;
    for (int i = 0; i < 3000; ++i) {
      if (!live.empty() && rng() % 5 < 2) {
        const std::size_t k = rng() % live.size();
        alloc.deallocate(live[k]);
        live[k] = live.back();
        live.pop_back();
      } else {
        void* p = alloc.allocate(sizes[rng() % std::size(sizes)], Backend::default_stream());
        out.push_back(backend.place(p));
        live.push_back(p);
      }
    }
    for (void* p : live) alloc.deallocate(p);
  }
  return out;
}

TEST(SegmentOrder, EqualFitsAreTakenFromTheOldestSegmentWhereverItLies) {
  PlacedSegments backend(/*downwards=*/true);
  CachingAllocator alloc(backend);
  const Stream s = Backend::default_stream();
  // Two 2 MiB small-pool segments of four 512 KiB blocks each; the second lies lower.
  std::vector<void*> blocks;
  for (int i = 0; i < 8; ++i) blocks.push_back(alloc.allocate(512 * 1024, s));
  ASSERT_EQ(backend.place(blocks[4]).first, 1u);
  alloc.deallocate(blocks[1]);
  alloc.deallocate(blocks[5]);
  void* again = alloc.allocate(512 * 1024, s);
  EXPECT_EQ(again, blocks[1]) << "the oldest segment's free block, not the lowest address";
  alloc.deallocate(again);
  for (int i : {0, 2, 3, 4, 6, 7}) alloc.deallocate(blocks[static_cast<std::size_t>(i)]);
}

TEST(SegmentOrder, TheSameProgramPlacesItsBlocksTheSameWhateverTheAddresses) {
  const std::uint32_t seed = ::testing::UnitTest::GetInstance()->random_seed();
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  const auto up = placements(false, seed);
  const auto down = placements(true, seed);
  ASSERT_EQ(up.size(), down.size());
  std::size_t segments = 0;
  for (std::size_t i = 0; i < up.size(); ++i) {
    ASSERT_EQ(up[i], down[i]) << "allocation " << i;
    segments = std::max(segments, up[i].first + 1);
  }
  EXPECT_GT(segments, 2u) << "the program must spread over several segments";
}

}  // namespace
}  // namespace memento
