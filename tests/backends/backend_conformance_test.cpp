// The Backend contract, run over every backend: memory, streams, events, copies, kernels and
// the clock. Assertions here hold on host, sim and cuda alike; where a backend can show more
// (host runs kernels' host code, host and cuda move real bytes, sim keeps virtual time) the
// extra checks are guarded by info().kind.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "backend_types.hpp"
#include "memento/backends.hpp"
#include "memento/device_profile.hpp"
#include "memento/error.hpp"

namespace memento {
namespace {

using testing::test_seed;

constexpr std::size_t kMiB = std::size_t{1} << 20;

template <typename T>
class BackendConformance : public ::testing::Test {
 protected:
  void SetUp() override {
    MEMENTO_SKIP_UNAVAILABLE(T);
    backend_ = T::make();
  }

  void TearDown() override {
    if (!backend_) return;
    // Nothing queued may outlive the buffers a test hands to it.
    backend_->synchronize_all();
  }

  [[nodiscard]] BackendKind kind() const { return backend_->info().kind; }
  /// True where device and pinned memory are real bytes (not sim's address space).
  [[nodiscard]] bool real_memory() const { return kind() != BackendKind::sim; }

  std::unique_ptr<Backend> backend_;
};

TYPED_TEST_SUITE(BackendConformance, testing::AllBackendTypes, testing::BackendTypeNames);

/// A kernel every backend can launch: `host` runs on host, an empty body on cuda, and sim
/// charges the cost.
Kernel kernel(
    std::string name, KernelCost cost, std::function<void()> host = [] {}) {
  return Kernel{std::move(name), cost, std::move(host), [](void*) {}};
}

/// RAII device segment so a failing assertion does not leak into the backend's destructor.
struct Segment {
  Segment(Backend& b, std::size_t n) : backend(b), bytes(n), ptr(b.allocate_segment(n)) {}
  ~Segment() {
    if (ptr != nullptr) backend.free_segment(ptr, bytes);
  }
  Segment(const Segment&) = delete;
  Segment& operator=(const Segment&) = delete;
  Backend& backend;
  std::size_t bytes;
  void* ptr;
};

struct Pinned {
  Pinned(Backend& b, std::size_t n) : backend(b), bytes(n), ptr(b.allocate_pinned(n, -1)) {}
  ~Pinned() {
    if (ptr != nullptr) backend.free_pinned(ptr, bytes);
  }
  Pinned(const Pinned&) = delete;
  Pinned& operator=(const Pinned&) = delete;
  Backend& backend;
  std::size_t bytes;
  void* ptr;
};

// ---- device info -----------------------------------------------------------------------

TYPED_TEST(BackendConformance, InfoDescribesTheDevice) {
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

TYPED_TEST(BackendConformance, SegmentsAreAlignedDisjointAndAccounted) {
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

TYPED_TEST(BackendConformance, SegmentBeyondCapacityIsNullNotAThrow) {
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

TYPED_TEST(BackendConformance, FreedSegmentsGiveTheirBytesBack) {
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

TYPED_TEST(BackendConformance, PinnedMemoryIsAllocatedAndFreed) {
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

// ---- streams ---------------------------------------------------------------------------

TYPED_TEST(BackendConformance, CreatedStreamsAreDistinctAndNotTheDefault) {
  Backend& b = *this->backend_;
  std::set<std::uint32_t> ids{Backend::default_stream().id};
  for (int i = 0; i < 8; ++i) {
    Stream s = b.create_stream();
    EXPECT_TRUE(ids.insert(s.id).second) << "stream id " << s.id << " handed out twice";
    EXPECT_NE(s, Backend::default_stream());
  }
}

TYPED_TEST(BackendConformance, NativeHandlesRoundTrip) {
  Backend& b = *this->backend_;
  EXPECT_EQ(b.native_handle(Backend::default_stream()), nullptr);
  EXPECT_EQ(b.stream_from_native(nullptr), Backend::default_stream());
  std::set<void*> handles;
  for (int i = 0; i < 4; ++i) {
    Stream s = b.create_stream();
    void* h = b.native_handle(s);
    EXPECT_NE(h, nullptr);
    EXPECT_TRUE(handles.insert(h).second) << "two streams share native handle " << h;
    EXPECT_EQ(b.stream_from_native(h), s);
    EXPECT_EQ(b.native_handle(s), h) << "the handle is stable";
  }
}

TYPED_TEST(BackendConformance, SynchronizeOnAnIdleStreamReturns) {
  Backend& b = *this->backend_;
  Stream s = b.create_stream();
  b.synchronize(s);
  b.synchronize(Backend::default_stream());
  b.synchronize_all();
}

TYPED_TEST(BackendConformance, StreamRunsItsWorkInSubmissionOrder) {
  Backend& b = *this->backend_;
  Stream s = b.create_stream();
  std::vector<int> order;  // written by the stream's worker only, read after synchronize
  for (int i = 0; i < 64; ++i)
    b.launch(s, kernel("seq", KernelCost{1e6, 1e3, false}, [&order, i] { order.push_back(i); }));
  b.synchronize(s);
  if (this->kind() == BackendKind::host) {
    ASSERT_EQ(order.size(), 64u);
    for (int i = 0; i < 64; ++i) EXPECT_EQ(order[static_cast<std::size_t>(i)], i);
  } else {
    EXPECT_TRUE(order.empty()) << "only the host backend runs kernel.host";
  }
}

// ---- events ----------------------------------------------------------------------------

TYPED_TEST(BackendConformance, AnEventNeverRecordedIsComplete) {
  Backend& b = *this->backend_;
  Event e = b.create_event();
  EXPECT_TRUE(b.query(e));
  b.synchronize(e);  // returns at once
  EXPECT_TRUE(b.query(e));
  // Waiting on it orders nothing and does not block the stream.
  Stream s = b.create_stream();
  b.wait(s, e);
  b.synchronize(s);
  b.destroy_event(e);
}

TYPED_TEST(BackendConformance, EventsAreDistinct) {
  Backend& b = *this->backend_;
  std::vector<Event> events;
  std::set<std::uint32_t> ids;
  for (int i = 0; i < 16; ++i) {
    events.push_back(b.create_event());
    EXPECT_TRUE(ids.insert(events.back().id).second) << "event id handed out twice";
  }
  for (Event e : events) b.destroy_event(e);
}

TYPED_TEST(BackendConformance, RecordedEventCompletesAfterSynchronize) {
  Backend& b = *this->backend_;
  Stream s = b.create_stream();
  std::atomic<bool> ran{false};
  b.launch(s, kernel("slow", KernelCost{1e10, 1e8, false}, [&] {
             std::this_thread::sleep_for(std::chrono::milliseconds(20));
             ran.store(true);
           }));
  Event e = b.create_event();
  b.record(e, s);
  b.synchronize(e);
  EXPECT_TRUE(b.query(e));
  if (this->kind() == BackendKind::host) {
    EXPECT_TRUE(ran.load());
  }
  // Re-recording on an idle stream captures nothing new: still complete after synchronize.
  b.record(e, s);
  b.synchronize(e);
  EXPECT_TRUE(b.query(e));
  // Synchronizing the stream completes every event recorded on it.
  b.launch(s, kernel("again", KernelCost{1e9, 1e6, false}));
  b.record(e, s);
  b.synchronize(s);
  EXPECT_TRUE(b.query(e));
  b.destroy_event(e);
}

TYPED_TEST(BackendConformance, RecordOnTheDefaultStreamWorks) {
  Backend& b = *this->backend_;
  std::atomic<int> ran{0};
  b.launch(Backend::default_stream(),
           kernel("default", KernelCost{1e9, 1e6, false}, [&] { ran.fetch_add(1); }));
  Event e = b.create_event();
  b.record(e, Backend::default_stream());
  b.synchronize(e);
  EXPECT_TRUE(b.query(e));
  if (this->kind() == BackendKind::host) {
    EXPECT_EQ(ran.load(), 1);
  }
  b.destroy_event(e);
}

TYPED_TEST(BackendConformance, WaitOrdersASecondStreamAfterTheFirst) {
  Backend& b = *this->backend_;
  Stream a = b.create_stream();
  Stream s2 = b.create_stream();
  const std::size_t n = kMiB;
  Segment dev(b, n);
  Pinned host(b, n);
  ASSERT_NE(dev.ptr, nullptr);
  ASSERT_NE(host.ptr, nullptr);
  if (this->real_memory()) std::memset(host.ptr, 7, n);

  // The sequence the host backend's kernels append to; order is checked on host only.
  std::mutex mutex;
  std::vector<int> sequence;
  const auto append = [&](int v) {
    std::lock_guard lock(mutex);
    sequence.push_back(v);
  };

  const KernelCost long_cost{1e12, 1e9, false};  // ~50 ms on the sim's A100 vector rate
  const double t0 = b.now();
  b.launch(a, kernel("first", long_cost, [&] {
             std::this_thread::sleep_for(std::chrono::milliseconds(60));
             append(1);
           }));
  Event ea = b.create_event();
  b.record(ea, a);
  b.wait(s2, ea);
  // An h2d copy runs on a different engine than kernels on sim and cuda, so only the wait
  // can order it after the first stream's kernel.
  b.copy_async(dev.ptr, host.ptr, n, CopyKind::host_to_device, s2);
  b.launch(s2, kernel("second", KernelCost{1e6, 1e3, false}, [&] { append(2); }));
  Event eb = b.create_event();
  b.record(eb, s2);

  b.synchronize(eb);
  EXPECT_TRUE(b.query(eb));
  EXPECT_TRUE(b.query(ea)) << "the second stream's event completed before the first's";

  if (this->kind() == BackendKind::host) {
    std::lock_guard lock(mutex);
    EXPECT_EQ(sequence, (std::vector<int>{1, 2}));
  }
  if (this->kind() == BackendKind::sim) {
    // Virtual time: the second stream's work ended after the first kernel's roofline time.
    const std::string name = b.info().name.substr(std::string("sim:").size());
    const DeviceProfile& p = find_device_profile(name);
    const double kernel_time =
        std::max(long_cost.flops / p.vector_flops, long_cost.bytes / p.hbm_bandwidth);
    const double copy_time = static_cast<double>(n) / p.h2d_bandwidth;
    EXPECT_GE(b.now() - t0, kernel_time + copy_time - 1e-12);
  }
  b.destroy_event(ea);
  b.destroy_event(eb);
}

TYPED_TEST(BackendConformance, SynchronizeAllCompletesEveryEvent) {
  Backend& b = *this->backend_;
  std::vector<Stream> streams{Backend::default_stream()};
  for (int i = 0; i < 4; ++i) streams.push_back(b.create_stream());
  std::atomic<int> ran{0};
  std::vector<Event> events;
  for (std::size_t i = 0; i < streams.size(); ++i) {
    b.launch(streams[i],
             kernel("work", KernelCost{1e9 * static_cast<double>(i + 1), 1e6, false}, [&ran, i] {
               std::this_thread::sleep_for(std::chrono::milliseconds(5 * i));
               ran.fetch_add(1);
             }));
    events.push_back(b.create_event());
    b.record(events.back(), streams[i]);
  }
  b.synchronize_all();
  for (Event e : events) EXPECT_TRUE(b.query(e)) << "event " << e.id;
  if (this->kind() == BackendKind::host) {
    EXPECT_EQ(ran.load(), static_cast<int>(streams.size()));
  }
  for (Event e : events) b.destroy_event(e);
}

TYPED_TEST(BackendConformance, DestroyedEventsAreRejected) {
  Backend& b = *this->backend_;
  Stream s = b.create_stream();
  Event e = b.create_event();
  b.record(e, s);
  b.synchronize(e);
  b.destroy_event(e);
  EXPECT_THROW((void)b.query(e), LogicError);
  EXPECT_THROW(b.record(e, s), LogicError);
  EXPECT_THROW(b.wait(s, e), LogicError);
  EXPECT_THROW(b.synchronize(e), LogicError);
  // A second destroy is reported, not thrown (destroy_event is noexcept).
  b.destroy_event(e);
  // An event this backend never handed out is rejected too.
  const Event bogus{0xFFFFFFF0u};
  EXPECT_THROW((void)b.query(bogus), LogicError);
  EXPECT_THROW(b.record(bogus, s), LogicError);
}

// Regression: event ids must never be reused, or a stale handle names a newer event.
TYPED_TEST(BackendConformance, DestroyedEventStaysRejectedAfterNewEventsAreCreated) {
  Backend& b = *this->backend_;
  Stream s = b.create_stream();
  Event stale = b.create_event();
  b.destroy_event(stale);
  Event fresh = b.create_event();
  EXPECT_NE(stale, fresh) << "a destroyed event's id was handed out again";
  EXPECT_THROW((void)b.query(stale), LogicError);
  EXPECT_THROW(b.record(stale, s), LogicError);
  // A double destroy of the stale handle must not destroy the live event.
  b.destroy_event(stale);
  EXPECT_NO_THROW(b.record(fresh, s));
  EXPECT_NO_THROW(b.synchronize(fresh));
  EXPECT_NO_THROW((void)b.query(fresh));
  b.destroy_event(fresh);
}

// ---- kernels ---------------------------------------------------------------------------

TYPED_TEST(BackendConformance, LaunchedKernelsComplete) {
  Backend& b = *this->backend_;
  Stream s = b.create_stream();
  std::atomic<int> ran{0};
  const std::vector<KernelCost> costs = {
      {0, 0, false}, {1e9, 0, false}, {0, 1e9, false}, {1e12, 1e6, true}, {5e10, 5e8, false}};
  for (const KernelCost& c : costs) b.launch(s, kernel("k", c, [&] { ran.fetch_add(1); }));
  Event e = b.create_event();
  b.record(e, s);
  b.synchronize(e);
  EXPECT_TRUE(b.query(e));
  if (this->kind() == BackendKind::host) {
    EXPECT_EQ(ran.load(), static_cast<int>(costs.size()));
  }
  b.destroy_event(e);
}

// ---- copies ----------------------------------------------------------------------------

TYPED_TEST(BackendConformance, CopiesRoundTripThroughTheDevice) {
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

TYPED_TEST(BackendConformance, HostToHostCopyBetweenPinnedBuffers) {
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

TYPED_TEST(BackendConformance, ZeroByteCopyIsANoOp) {
  Backend& b = *this->backend_;
  Segment d(b, 4096);
  Pinned h(b, 4096);
  ASSERT_TRUE(d.ptr && h.ptr);
  Stream s = b.create_stream();
  EXPECT_NO_THROW(b.copy_async(d.ptr, h.ptr, 0, CopyKind::host_to_device, s));
  EXPECT_NO_THROW(b.copy_async(h.ptr, d.ptr, 0, CopyKind::device_to_host, s));
  b.synchronize(s);
}

TYPED_TEST(BackendConformance, CopyIntoTheMiddleOfASegment) {
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

// ---- clock -----------------------------------------------------------------------------

TYPED_TEST(BackendConformance, NowIsNonDecreasing) {
  Backend& b = *this->backend_;
  Stream s = b.create_stream();
  Segment d(b, kMiB);
  Pinned h(b, kMiB);
  ASSERT_TRUE(d.ptr && h.ptr);
  double last = b.now();
  EXPECT_GE(last, 0.0);
  for (int i = 0; i < 50; ++i) {
    if (i % 3 == 0) b.launch(s, kernel("tick", KernelCost{1e8, 1e6, false}));
    if (i % 5 == 0) b.copy_async(d.ptr, h.ptr, kMiB, CopyKind::host_to_device, s);
    if (i % 7 == 0) b.synchronize(s);
    const double t = b.now();
    EXPECT_GE(t, last) << "step " << i;
    last = t;
  }
  b.synchronize_all();
  EXPECT_GE(b.now(), last);
}

// ---- threads ---------------------------------------------------------------------------

TYPED_TEST(BackendConformance, ConcurrentCallersFromManyThreads) {
  Backend& b = *this->backend_;
  constexpr int kThreads = 4;
  constexpr int kRounds = 40;
  std::atomic<int> ran{0};
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      try {
        Stream s = b.create_stream();
        Event e = b.create_event();
        for (int r = 0; r < kRounds; ++r) {
          void* seg = b.allocate_segment(64 * 1024);
          if (seg == nullptr) {
            failures.fetch_add(1);
            continue;
          }
          b.launch(s, kernel("mt", KernelCost{1e6, 1e4, false}, [&] { ran.fetch_add(1); }));
          b.record(e, s);
          if (r % 4 == 0) b.synchronize(e);
          (void)b.query(e);
          b.synchronize(s);  // the kernel is done before its segment goes back
          b.free_segment(seg, 64 * 1024);
        }
        b.destroy_event(e);
      } catch (const std::exception&) {
        failures.fetch_add(1);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  b.synchronize_all();
  EXPECT_EQ(b.segment_bytes(), 0u);
  if (this->kind() == BackendKind::host) {
    EXPECT_EQ(ran.load(), kThreads * kRounds);
  }
}

}  // namespace
}  // namespace memento
