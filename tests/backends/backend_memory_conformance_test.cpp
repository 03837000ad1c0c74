// The Backend contract over every backend: device info, segments, pinned memory, copies.
#include "backends/backend_conformance.hpp"

namespace memento {
namespace {

using conformance::kernel;
using conformance::kMiB;
using conformance::Pinned;
using conformance::Segment;
using testing::test_seed;

template <typename T>
class BackendMemory : public conformance::BackendConformance<T> {};
TYPED_TEST_SUITE(BackendMemory, testing::AllBackendTypes, testing::BackendTypeNames);

// ---- device info -----------------------------------------------------------------------

TYPED_TEST(BackendMemory, InfoDescribesTheDevice) {
  const DeviceInfo& info = this->backend_->info();
  EXPECT_EQ(std::string(to_string(info.kind)), TypeParam::name);
  EXPECT_FALSE(info.name.empty());
  EXPECT_NE(info.name.find(TypeParam::name), std::string::npos) << info.name;
  EXPECT_GT(info.capacity, 0u);
  EXPECT_GE(info.numa_node, -1);
  // info() is a stable reference.
  EXPECT_EQ(&info, &this->backend_->info());
}

// ---- device memory ---------------------------------------------------------------------

TYPED_TEST(BackendMemory, SegmentsAreAlignedDisjointAndAccounted) {
  Backend& b = *this->backend_;
  const std::size_t base = b.segment_bytes();
  const std::vector<std::size_t> sizes = {1,        511,  512,          513,      4096,
                                          kMiB - 1, kMiB, 3 * kMiB + 7, 2 * kMiB, 100};
  std::map<std::uintptr_t, std::size_t> live;
  std::size_t total = 0;
  for (std::size_t n : sizes) {
    void* p = b.allocate_segment(n);
    ASSERT_NE(p, nullptr) << n;
    const auto a = reinterpret_cast<std::uintptr_t>(p);
    EXPECT_EQ(a % 512, 0u) << n;
    // Disjoint from every live segment.
    auto next = live.lower_bound(a);
    if (next != live.end()) {
      EXPECT_LE(a + n, next->first) << n;
    }
    if (next != live.begin()) {
      auto prev = std::prev(next);
      EXPECT_LE(prev->first + prev->second, a) << n;
    }
    live.emplace(a, n);
    total += n;
    EXPECT_EQ(b.segment_bytes(), base + total) << n;
  }
  EXPECT_EQ(live.size(), sizes.size());
  for (auto& [a, n] : live) {
    b.free_segment(reinterpret_cast<void*>(a), n);
    total -= n;
    EXPECT_EQ(b.segment_bytes(), base + total);
  }
  EXPECT_EQ(b.segment_bytes(), base);
}

TYPED_TEST(BackendMemory, SegmentBeyondCapacityIsNullNotAThrow) {
  Backend& b = *this->backend_;
  const std::size_t capacity = b.info().capacity;
  void* p = nullptr;
  EXPECT_NO_THROW(p = b.allocate_segment(capacity + 1));
  EXPECT_EQ(p, nullptr);
  EXPECT_NO_THROW(p = b.allocate_segment(capacity * 2));
  EXPECT_EQ(p, nullptr);
  EXPECT_EQ(b.segment_bytes(), 0u);
  // The refusal leaves the backend usable.
  Segment s(b, kMiB);
  EXPECT_NE(s.ptr, nullptr);
  EXPECT_EQ(b.segment_bytes(), kMiB);
}

TYPED_TEST(BackendMemory, FreedSegmentsGiveTheirBytesBack) {
  Backend& b = *this->backend_;
  // Repeated allocate/free of a large segment must not run out: the frees return memory.
  const std::size_t big = std::min<std::size_t>(b.info().capacity / 4, std::size_t{256} * kMiB);
  for (int i = 0; i < 16; ++i) {
    void* p = b.allocate_segment(big);
    ASSERT_NE(p, nullptr) << i;
    EXPECT_EQ(b.segment_bytes(), big);
    b.free_segment(p, big);
    EXPECT_EQ(b.segment_bytes(), 0u);
  }
}

TYPED_TEST(BackendMemory, PinnedMemoryIsAllocatedAndFreed) {
  Backend& b = *this->backend_;
  std::vector<std::pair<void*, std::size_t>> buffers;
  for (std::size_t n : {std::size_t{1}, std::size_t{4096}, kMiB, 3 * kMiB + 5}) {
    void* p = b.allocate_pinned(n, -1);
    ASSERT_NE(p, nullptr) << n;
    for (auto& [q, m] : buffers) EXPECT_NE(p, q);
    if (this->real_memory()) {
      // Real host memory: every byte is writable and readable.
      std::memset(p, 0xA5, n);
      EXPECT_EQ(static_cast<unsigned char*>(p)[n - 1], 0xA5);
    }
    buffers.emplace_back(p, n);
  }
  // Pinned memory is host memory: it does not count as device segments.
  EXPECT_EQ(b.segment_bytes(), 0u);
  for (auto& [p, n] : buffers) b.free_pinned(p, n);
  // A NUMA preference is a hint: the node the device reports is accepted.
  void* p = b.allocate_pinned(kMiB, b.info().numa_node);
  ASSERT_NE(p, nullptr);
  b.free_pinned(p, kMiB);
}

// ---- copies ----------------------------------------------------------------------------

TYPED_TEST(BackendMemory, CopiesRoundTripThroughTheDevice) {
  Backend& b = *this->backend_;
  const std::uint64_t seed = test_seed();
  const std::size_t n = 3 * kMiB + 123;
  Pinned src(b, n);
  Pinned dst(b, n);
  Segment d1(b, n);
  Segment d2(b, n);
  ASSERT_TRUE(src.ptr && dst.ptr && d1.ptr && d2.ptr);

  std::vector<unsigned char> pattern(n);
  std::mt19937_64 rng(seed);
  for (auto& byte : pattern) byte = static_cast<unsigned char>(rng());
  if (this->real_memory()) {
    std::memcpy(src.ptr, pattern.data(), n);
    std::memset(dst.ptr, 0, n);
  }

  Stream up = b.create_stream();
  Stream down = b.create_stream();
  Event uploaded = b.create_event();
  Event done = b.create_event();
  const double t0 = b.now();
  b.copy_async(d1.ptr, src.ptr, n, CopyKind::host_to_device, up);
  b.copy_async(d2.ptr, d1.ptr, n, CopyKind::device_to_device, up);
  b.record(uploaded, up);
  b.wait(down, uploaded);
  b.copy_async(dst.ptr, d2.ptr, n, CopyKind::device_to_host, down);
  b.record(done, down);
  b.synchronize(done);
  EXPECT_TRUE(b.query(done));
  EXPECT_TRUE(b.query(uploaded));
  const double t1 = b.now();
  EXPECT_GE(t1, t0);

  if (this->real_memory()) {
    // Bit-exact through two device buffers and back (device memory is only touched by copies,
    // which also holds on cuda where the host cannot read it).
    EXPECT_EQ(std::memcmp(dst.ptr, pattern.data(), n), 0);
  } else {
    // Address space only: nothing to compare, but the copies took virtual time.
    EXPECT_GT(t1, t0);
  }
  b.destroy_event(uploaded);
  b.destroy_event(done);
}

TYPED_TEST(BackendMemory, HostToHostCopyBetweenPinnedBuffers) {
  Backend& b = *this->backend_;
  const std::size_t n = kMiB + 1;
  Pinned src(b, n);
  Pinned dst(b, n);
  ASSERT_TRUE(src.ptr && dst.ptr);
  if (this->real_memory()) {
    for (std::size_t i = 0; i < n; ++i)
      static_cast<unsigned char*>(src.ptr)[i] = static_cast<unsigned char>(i * 31 + 7);
    std::memset(dst.ptr, 0, n);
  }
  Stream s = b.create_stream();
  b.copy_async(dst.ptr, src.ptr, n, CopyKind::host_to_host, s);
  b.synchronize(s);
  if (this->real_memory()) {
    EXPECT_EQ(std::memcmp(dst.ptr, src.ptr, n), 0);
  }
}

TYPED_TEST(BackendMemory, ZeroByteCopyIsANoOp) {
  Backend& b = *this->backend_;
  Segment d(b, 4096);
  Pinned h(b, 4096);
  ASSERT_TRUE(d.ptr && h.ptr);
  Stream s = b.create_stream();
  EXPECT_NO_THROW(b.copy_async(d.ptr, h.ptr, 0, CopyKind::host_to_device, s));
  EXPECT_NO_THROW(b.copy_async(h.ptr, d.ptr, 0, CopyKind::device_to_host, s));
  b.synchronize(s);
}

TYPED_TEST(BackendMemory, CopyIntoTheMiddleOfASegment) {
  Backend& b = *this->backend_;
  const std::size_t n = 64 * 1024;
  Segment d(b, 4 * n);
  Pinned src(b, n);
  Pinned dst(b, n);
  ASSERT_TRUE(d.ptr && src.ptr && dst.ptr);
  if (this->real_memory()) {
    std::memset(src.ptr, 0x3C, n);
    std::memset(dst.ptr, 0, n);
  }
  void* middle = static_cast<char*>(d.ptr) + 2 * n + 512;
  Stream s = b.create_stream();
  b.copy_async(middle, src.ptr, n, CopyKind::host_to_device, s);
  b.copy_async(dst.ptr, middle, n, CopyKind::device_to_host, s);
  b.synchronize(s);
  if (this->real_memory()) {
    EXPECT_EQ(std::memcmp(dst.ptr, src.ptr, n), 0);
  }
}

}  // namespace
}  // namespace memento
