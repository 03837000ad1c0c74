// The sim backend's time and memory model, checked against datasheet figures.
#include "backends/sim/sim_backend.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <fstream>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "memento/backends.hpp"
#include "memento/error.hpp"

namespace memento {
namespace {

constexpr double kLatency = 4e-6;  // every built-in profile
constexpr double kTol = 1e-12;     // seconds; the model is exact up to rounding
constexpr std::size_t kGiB = std::size_t{1} << 30;

struct Sim {
  explicit Sim(const char* profile)
      : backend(make_sim_backend(find_device_profile(profile))),
        sim(dynamic_cast<SimBackend&>(*backend)) {}
  std::unique_ptr<Backend> backend;
  SimBackend& sim;
};

Kernel kernel(double flops, double bytes, bool tensor_cores) {
  return Kernel{"k", KernelCost{flops, bytes, tensor_cores}, {}, {}};
}

// Resident set size of this process, from /proc/self/statm (second field, in pages).
std::size_t resident_bytes() {
  std::ifstream statm("/proc/self/statm");
  std::size_t size_pages = 0;
  std::size_t resident_pages = 0;
  statm >> size_pages >> resident_pages;
  return resident_pages * static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
}

// ---- profiles --------------------------------------------------------------------------

TEST(SimProfiles, EveryProfileExistsWithPositiveFields) {
  const std::vector<std::string> names = {"a100-40gb", "a100-80gb", "h100-sxm",
                                          "h200",      "rtx4090",   "l4"};
  EXPECT_EQ(device_profiles().size(), names.size());
  for (const std::string& name : names) {
    const DeviceProfile& p = find_device_profile(name);
    EXPECT_EQ(p.name, name);
    EXPECT_FALSE(p.description.empty()) << name;
    EXPECT_GT(p.capacity, 0u) << name;
    EXPECT_GT(p.matrix_flops, 0) << name;
    EXPECT_GT(p.vector_flops, 0) << name;
    EXPECT_GT(p.hbm_bandwidth, 0) << name;
    EXPECT_GT(p.h2d_bandwidth, 0) << name;
    EXPECT_GT(p.d2h_bandwidth, 0) << name;
    EXPECT_GT(p.launch_latency, 0) << name;
    // Achievable link rates never exceed the PCIe 5.0 x16 theoretical 63 GB/s.
    EXPECT_LT(p.h2d_bandwidth, 63e9) << name;
  }
}

TEST(SimProfiles, DatasheetFigures) {
  const DeviceProfile& h100 = find_device_profile("h100-sxm");
  EXPECT_EQ(h100.capacity, 80 * kGiB);
  EXPECT_EQ(h100.matrix_flops, 989e12);
  EXPECT_EQ(h100.vector_flops, 67e12);
  EXPECT_EQ(h100.hbm_bandwidth, 3.35e12);
  EXPECT_EQ(h100.h2d_bandwidth, 50e9);
  const DeviceProfile& a100 = find_device_profile("a100-40gb");
  EXPECT_EQ(a100.capacity, 40 * kGiB);
  EXPECT_EQ(a100.matrix_flops, 312e12);
  EXPECT_EQ(a100.hbm_bandwidth, 1555e9);
  EXPECT_EQ(a100.d2h_bandwidth, 25e9);
  EXPECT_EQ(find_device_profile("h200").capacity, std::size_t{141'000'000'000});
}

// The names cudaDeviceProp::name gives, as nvidia-smi prints them.
TEST(SimProfiles, CudaProductNamesFindTheirFamilysDatasheet) {
  const auto of = [](const char* product) {
    const DeviceProfile* p = datasheet_profile_of_gpu(product);
    return p != nullptr ? p->name : std::string("none");
  };
  EXPECT_EQ(of("NVIDIA H200"), "h200");
  EXPECT_EQ(of("NVIDIA H200 NVL"), "h200");
  EXPECT_EQ(of("NVIDIA H100 80GB HBM3"), "h100-sxm");
  EXPECT_EQ(of("NVIDIA H100 PCIe"), "h100-sxm");
  EXPECT_EQ(of("NVIDIA A100-SXM4-80GB"), "a100-80gb");
  EXPECT_EQ(of("NVIDIA A100 80GB PCIe"), "a100-80gb");
  EXPECT_EQ(of("NVIDIA A100-PCIE-40GB"), "a100-40gb");
  EXPECT_EQ(of("NVIDIA GeForce RTX 4090"), "rtx4090");
  EXPECT_EQ(of("NVIDIA L4"), "l4");
  // Whole words only, and no guess for a GPU memento has no datasheet for.
  EXPECT_EQ(of("NVIDIA L40S"), "none");
  EXPECT_EQ(of("NVIDIA GH200 480GB"), "none");
  EXPECT_EQ(of("NVIDIA GeForce RTX 3090"), "none");
  EXPECT_EQ(of("Tesla V100-SXM2-16GB"), "none");
  EXPECT_EQ(of(""), "none");
}

TEST(SimProfiles, UnknownNameListsKnownNames) {
  try {
    (void)find_device_profile("h100");
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("'h100'"), std::string::npos) << msg;
    for (const DeviceProfile& p : device_profiles()) {
      EXPECT_NE(msg.find(p.name), std::string::npos) << msg;
    }
  }
}

TEST(SimBackend, RejectsBadProfile) {
  DeviceProfile p = find_device_profile("l4");
  p.hbm_bandwidth = 0;
  EXPECT_THROW((void)make_sim_backend(p), ConfigError);
}

TEST(SimBackend, Info) {
  Sim s("h100-sxm");
  EXPECT_EQ(s.backend->info().kind, BackendKind::sim);
  EXPECT_EQ(s.backend->info().name, "sim:h100-sxm");
  EXPECT_EQ(s.backend->info().capacity, 80 * kGiB);
  EXPECT_EQ(s.backend->info().numa_node, -1);
  EXPECT_EQ(s.backend->now(), 0.0);
}

// ---- kernels ---------------------------------------------------------------------------

TEST(SimBackend, ComputeBoundKernelUsesTensorRate) {
  Sim s("h100-sxm");
  Backend& b = *s.backend;
  const Stream st = b.default_stream();
  b.launch(st, kernel(989e9, 1e6, true));  // 1 ms at 989 TFLOPS; 1 MB is 0.3 us of HBM
  EXPECT_NEAR(b.now(), kLatency, kTol);    // the launch is asynchronous
  EXPECT_NEAR(s.sim.stream_time(st), kLatency + 1e-3, kTol);
  b.synchronize(st);
  EXPECT_NEAR(b.now(), kLatency + 1e-3, kTol);
}

TEST(SimBackend, NonTensorKernelUsesVectorRate) {
  Sim s("h100-sxm");
  s.backend->launch(Stream{}, kernel(67e9, 0, false));  // 1 ms at 67 TFLOPS FP32
  EXPECT_NEAR(s.sim.stream_time(Stream{}), kLatency + 1e-3, kTol);
}

TEST(SimBackend, MemoryBoundKernelUsesHbm) {
  Sim s("h100-sxm");
  s.backend->launch(Stream{}, kernel(1e6, 3.35e9, true));  // 3.35 GB at 3.35 TB/s: 1 ms
  EXPECT_NEAR(s.sim.stream_time(Stream{}), kLatency + 1e-3, kTol);
}

TEST(SimBackend, ZeroCostKernelTakesOnlyLatencyAndNeverRuns) {
  Sim s("l4");
  bool ran = false;
  s.backend->launch(Stream{}, Kernel{"noop", {}, [&] { ran = true; }, [&](void*) { ran = true; }});
  EXPECT_NEAR(s.sim.stream_time(Stream{}), kLatency, kTol);
  EXPECT_NEAR(s.backend->now(), kLatency, kTol);
  EXPECT_FALSE(ran);
}

TEST(SimBackend, RejectsNegativeCost) {
  Sim s("l4");
  EXPECT_THROW(s.backend->launch(Stream{}, kernel(-1, 0, true)), LogicError);
}

TEST(SimBackend, KernelsOnTwoStreamsSerializeOnComputeEngine) {
  Sim s("h100-sxm");
  Backend& b = *s.backend;
  const Stream s1 = b.create_stream();
  const Stream s2 = b.create_stream();
  b.launch(s1, kernel(989e9, 0, true));
  b.launch(s2, kernel(989e9, 0, true));
  EXPECT_NEAR(s.sim.stream_time(s1), kLatency + 1e-3, kTol);
  EXPECT_NEAR(s.sim.stream_time(s2), kLatency + 2e-3, kTol);
  b.synchronize_all();
  EXPECT_NEAR(b.now(), kLatency + 2e-3, kTol);
}

TEST(SimBackend, HostTasksTakeTheirSecondsOnACpuEngineOfTheirOwn) {
  Sim s("h100-sxm");
  Backend& b = *s.backend;
  const Stream s1 = b.create_stream();
  const Stream s2 = b.create_stream();
  b.launch(s1, kernel(989e9, 0, true));  // 1 ms on the compute engine
  b.launch_host(s2, HostTask{"cpu", {}, 2e-3});
  b.launch_host(s1, HostTask{"cpu", {}, 1e-3});
  // The first task overlaps the kernel; the second waits for its stream and the CPU engine.
  EXPECT_NEAR(s.sim.stream_time(s2), 2 * kLatency + 2e-3, kTol);
  EXPECT_NEAR(s.sim.stream_time(s1), 2 * kLatency + 3e-3, kTol);
  EXPECT_NEAR(b.now(), 3 * kLatency, kTol) << "the issuing thread goes on";
  b.launch(s2, kernel(989e9, 0, true));  // the compute engine is free since 1 ms
  EXPECT_NEAR(s.sim.stream_time(s2), 2 * kLatency + 3e-3, kTol);
  EXPECT_EQ(s.sim.kernels_launched(), 2u);
}

// ---- copies ----------------------------------------------------------------------------

class SimCopies : public ::testing::Test {
 protected:
  static constexpr std::size_t kBytes = 50'000'000;  // 1 ms over 50 GB/s (PCIe 5.0)
  void SetUp() override {
    dev = b.allocate_segment(4 * kBytes);
    host = b.allocate_pinned(4 * kBytes, -1);
    ASSERT_NE(dev, nullptr);
    ASSERT_NE(host, nullptr);
  }
  char* d(std::size_t i) { return static_cast<char*>(dev) + i * kBytes; }
  char* h(std::size_t i) { return static_cast<char*>(host) + i * kBytes; }

  Sim s{"h100-sxm"};
  Backend& b = *s.backend;
  void* dev = nullptr;
  void* host = nullptr;
};

TEST_F(SimCopies, KernelAndH2dCopyOverlap) {
  const Stream copy = b.create_stream();
  b.launch(Stream{}, kernel(989e9, 0, true));
  b.copy_async(d(0), h(0), kBytes, CopyKind::host_to_device, copy);
  EXPECT_NEAR(s.sim.stream_time(Stream{}), kLatency + 1e-3, kTol);
  EXPECT_NEAR(s.sim.stream_time(copy), 2 * kLatency + 1e-3, kTol);
}

TEST_F(SimCopies, TwoH2dCopiesSerialize) {
  const Stream c1 = b.create_stream();
  const Stream c2 = b.create_stream();
  b.copy_async(d(0), h(0), kBytes, CopyKind::host_to_device, c1);
  b.copy_async(d(1), h(1), kBytes, CopyKind::host_to_device, c2);
  EXPECT_NEAR(s.sim.stream_time(c1), kLatency + 1e-3, kTol);
  EXPECT_NEAR(s.sim.stream_time(c2), kLatency + 2e-3, kTol);
}

TEST_F(SimCopies, D2hAndH2dOverlap) {
  const Stream up = b.create_stream();
  const Stream down = b.create_stream();
  b.copy_async(d(0), h(0), kBytes, CopyKind::host_to_device, up);
  b.copy_async(h(1), d(1), kBytes, CopyKind::device_to_host, down);
  EXPECT_NEAR(s.sim.stream_time(up), kLatency + 1e-3, kTol);
  EXPECT_NEAR(s.sim.stream_time(down), 2 * kLatency + 1e-3, kTol);
}

TEST_F(SimCopies, D2dRunsOnComputeEngineAtHbmSpeed) {
  const Stream other = b.create_stream();
  b.copy_async(d(1), d(0), kBytes, CopyKind::device_to_device, other);
  const double copy = 2.0 * kBytes / 3.35e12;  // read + write
  EXPECT_NEAR(s.sim.stream_time(other), kLatency + copy, kTol);
  b.launch(Stream{}, kernel(989e9, 0, true));  // waits for the copy on the compute engine
  EXPECT_NEAR(s.sim.stream_time(Stream{}), kLatency + copy + 1e-3, kTol);
}

TEST_F(SimCopies, H2hUsesNoEngine) {
  b.copy_async(h(0), d(0), kBytes, CopyKind::device_to_host, Stream{});
  const Stream other = b.create_stream();
  std::vector<char> a(16), c(16);
  b.copy_async(a.data(), c.data(), 16, CopyKind::host_to_host, other);  // pageable is fine
  EXPECT_NEAR(s.sim.stream_time(other), 2 * kLatency + 16 / 3.35e12, kTol);
}

TEST_F(SimCopies, ZeroByteCopyIsFree) {
  b.copy_async(nullptr, nullptr, 0, CopyKind::host_to_device, Stream{});  // as on cuda
  EXPECT_EQ(b.now(), 0.0);
  EXPECT_EQ(s.sim.stream_time(Stream{}), 0.0);
  EXPECT_THROW(b.copy_async(nullptr, nullptr, 0, CopyKind::host_to_device, Stream{5}), LogicError);
}

TEST_F(SimCopies, RejectsPointersOutsideLiveSegments) {
  EXPECT_THROW(b.copy_async(d(3) + 1, h(0), kBytes, CopyKind::host_to_device, Stream{}),
               LogicError);  // runs past the segment's end
  EXPECT_THROW(b.copy_async(h(0), h(1), 16, CopyKind::device_to_host, Stream{}), LogicError);
  EXPECT_THROW(b.copy_async(nullptr, h(0), 16, CopyKind::host_to_device, Stream{}), LogicError);
  b.free_segment(dev, 4 * kBytes);
  EXPECT_THROW(b.copy_async(d(0), h(0), 16, CopyKind::host_to_device, Stream{}), LogicError);
  dev = nullptr;
}

// ---- events ----------------------------------------------------------------------------

TEST_F(SimCopies, EventOrdersWorkAcrossStreams) {
  const Stream up = b.create_stream();
  const Stream down = b.create_stream();
  const Event uploaded = b.create_event();
  b.copy_async(d(0), h(0), kBytes, CopyKind::host_to_device, up);
  b.record(uploaded, up);
  EXPECT_NEAR(s.sim.event_time(uploaded), kLatency + 1e-3, kTol);
  b.wait(down, uploaded);
  // The d2h engine is idle, yet the copy back starts only after the upload.
  b.copy_async(h(1), d(0), kBytes, CopyKind::device_to_host, down);
  EXPECT_NEAR(s.sim.stream_time(down), kLatency + 2e-3, kTol);
  b.destroy_event(uploaded);
}

TEST_F(SimCopies, ReRecordingReplacesCapture) {
  const Event e = b.create_event();
  b.record(e, Stream{});  // empty stream: time 0
  EXPECT_EQ(s.sim.event_time(e), 0.0);
  b.launch(Stream{}, kernel(989e9, 0, true));
  b.record(e, Stream{});
  EXPECT_NEAR(s.sim.event_time(e), kLatency + 1e-3, kTol);
}

TEST(SimBackend, QueryFalseBeforeSynchronizeTrueAfter) {
  Sim s("a100-80gb");
  Backend& b = *s.backend;
  const Event never = b.create_event();
  EXPECT_TRUE(b.query(never));  // never recorded: complete
  const Event e = b.create_event();
  b.launch(Stream{}, kernel(312e9, 0, true));  // 1 ms on A100
  b.record(e, Stream{});
  EXPECT_FALSE(b.query(e));
  b.synchronize(e);
  EXPECT_TRUE(b.query(e));
  EXPECT_NEAR(b.now(), kLatency + 1e-3, kTol);
}

TEST(SimBackend, AdvanceHostCompletesWork) {
  Sim s("a100-80gb");
  const Event e = s.backend->create_event();
  s.backend->launch(Stream{}, kernel(312e9, 0, true));
  s.backend->record(e, Stream{});
  s.sim.advance_host(0.5e-3);
  EXPECT_FALSE(s.backend->query(e));
  s.sim.advance_host(0.5e-3);
  EXPECT_TRUE(s.backend->query(e));
  EXPECT_THROW(s.sim.advance_host(-1), LogicError);
  // Work issued now starts at the host's time, not at the idle stream's tail.
  s.backend->launch(Stream{}, kernel(0, 0, false));
  EXPECT_NEAR(s.sim.stream_time(Stream{}), 2 * kLatency + 1e-3, kTol);
}

// ---- memory ----------------------------------------------------------------------------

TEST(SimBackend, EightyGigabyteDeviceOnASmallMachine) {
  Sim s("a100-80gb");
  Backend& b = *s.backend;
  const std::size_t rss_before = resident_bytes();
  std::vector<void*> segments;
  for (int i = 0; i < 70; ++i) {
    segments.push_back(b.allocate_segment(kGiB));
    ASSERT_NE(segments.back(), nullptr) << i;
  }
  EXPECT_EQ(b.segment_bytes(), 70 * kGiB);
  EXPECT_EQ(b.allocate_segment(90 * kGiB), nullptr);
  EXPECT_EQ(b.segment_bytes(), 70 * kGiB);
  void* rest = b.allocate_segment(10 * kGiB);  // exactly fills the 80 GiB
  ASSERT_NE(rest, nullptr);
  EXPECT_EQ(b.allocate_segment(1), nullptr);
  // Nothing was touched: the process did not grow by anything like 80 GiB.
  EXPECT_LT(resident_bytes(), rss_before + (64u << 20));
  b.free_segment(rest, 10 * kGiB);
  for (void* p : segments) b.free_segment(p, kGiB);
  EXPECT_EQ(b.segment_bytes(), 0u);
}

TEST(SimBackend, SegmentsAreAlignedDisjointAndNeverReused) {
  Sim s("l4");
  Backend& b = *s.backend;
  std::set<std::uintptr_t> seen;
  std::uintptr_t last_end = 0;
  for (const std::size_t bytes : {std::size_t{1}, std::size_t{513}, std::size_t{4096}}) {
    void* p = b.allocate_segment(bytes);
    ASSERT_NE(p, nullptr);
    const auto a = reinterpret_cast<std::uintptr_t>(p);
    EXPECT_EQ(a % 512, 0u);
    EXPECT_GE(a, last_end);
    last_end = a + bytes;
    seen.insert(a);
    b.free_segment(p, bytes);
  }
  void* again = b.allocate_segment(1);
  EXPECT_EQ(seen.count(reinterpret_cast<std::uintptr_t>(again)), 0u);
  b.free_segment(again, 1);
}

TEST(SimBackend, FreeingUnknownSegmentLogsAndDoesNotThrow) {
  Sim s("l4");
  void* p = s.backend->allocate_segment(1024);
  int local = 0;
  ::testing::internal::CaptureStderr();
  s.backend->free_segment(&local, 1024);
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("not a live segment"), std::string::npos) << err;
  EXPECT_EQ(s.backend->segment_bytes(), 1024u);
  s.backend->free_segment(p, 1024);
  EXPECT_EQ(s.backend->segment_bytes(), 0u);
}

TEST(SimBackend, PinnedIsAddressSpaceOnly) {
  Sim s("rtx4090");
  const std::size_t rss_before = resident_bytes();
  void* p = s.backend->allocate_pinned(std::size_t{1} << 40, 0);  // 1 TiB
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(p) % 512, 0u);
  EXPECT_EQ(s.sim.pinned_bytes(), std::size_t{1} << 40);
  EXPECT_EQ(s.backend->segment_bytes(), 0u);  // no device capacity used
  EXPECT_LT(resident_bytes(), rss_before + (64u << 20));
  s.backend->free_pinned(p, std::size_t{1} << 40);
  EXPECT_EQ(s.sim.pinned_bytes(), 0u);
}

// ---- handles and ids -------------------------------------------------------------------

TEST(SimBackend, NativeHandleRoundTrip) {
  Sim s("h200");
  Backend& b = *s.backend;
  EXPECT_EQ(b.native_handle(b.default_stream()), nullptr);
  EXPECT_EQ(b.stream_from_native(nullptr), b.default_stream());
  const Stream s1 = b.create_stream();
  const Stream s2 = b.create_stream();
  void* h1 = b.native_handle(s1);
  void* h2 = b.native_handle(s2);
  EXPECT_NE(h1, nullptr);
  EXPECT_NE(h1, h2);
  EXPECT_EQ(b.stream_from_native(h1), s1);
  EXPECT_EQ(b.stream_from_native(h2), s2);
  int local = 0;
  EXPECT_THROW((void)b.stream_from_native(&local), LogicError);
}

TEST(SimBackend, BadIdsThrow) {
  Sim s("h200");
  Backend& b = *s.backend;
  try {
    b.launch(Stream{99}, kernel(1, 1, true));
    FAIL() << "expected LogicError";
  } catch (const LogicError& e) {
    EXPECT_NE(std::string(e.what()).find("99"), std::string::npos) << e.what();
  }
  EXPECT_THROW(b.synchronize(Stream{1}), LogicError);
  EXPECT_THROW((void)b.native_handle(Stream{7}), LogicError);
  EXPECT_THROW(b.record(Event{12345}, Stream{}), LogicError);
  EXPECT_THROW((void)b.query(Event{}), LogicError);  // id 0 is never handed out
  const Event e = b.create_event();
  b.destroy_event(e);
  try {
    (void)b.query(e);
    FAIL() << "expected LogicError";
  } catch (const LogicError& err) {
    EXPECT_NE(std::string(err.what()).find("destroyed"), std::string::npos) << err.what();
  }
  EXPECT_THROW(b.wait(Stream{}, e), LogicError);
  EXPECT_THROW(b.synchronize(e), LogicError);
  ::testing::internal::CaptureStderr();
  b.destroy_event(e);  // twice: logged, not thrown
  EXPECT_FALSE(::testing::internal::GetCapturedStderr().empty());
}

TEST(SimBackend, ConcurrentLaunchesAreAllAccounted) {
  Sim s("h100-sxm");
  constexpr int kThreads = 4;
  constexpr int kLaunches = 1000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      const Stream st = s.backend->create_stream();
      for (int i = 0; i < kLaunches; ++i) s.backend->launch(st, kernel(989e6, 0, true));
    });
  }
  for (std::thread& t : threads) t.join();
  s.backend->synchronize_all();
  // Every launch cost the host its 4 us of latency, whatever the interleaving; each 1 us
  // kernel finished before the next launch was issued, so the last one ends 1 us after it.
  EXPECT_NEAR(s.backend->now(), kThreads * kLaunches * kLatency + 1e-6, 1e-9);
}

}  // namespace
}  // namespace memento
