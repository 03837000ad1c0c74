// How the sim runs copies, waits and kernels on a calibrated profile: the measured overlap
// with kernels, the slowdowns under kernels and both ways at once, the wake-up after a
// wait, and the gap between kernels.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "backends/sim/sim_backend.hpp"
#include "memento/device_profile.hpp"
#include "memento/error.hpp"

namespace memento {
namespace {

constexpr std::size_t kBytes = std::size_t{1} << 20;

// A profile whose copies take exactly 1 ms each way alone, with no launch latency.
DeviceProfile profile() {
  DeviceProfile p = find_device_profile("h100-sxm");
  p.h2d_bandwidth = 1e9 * static_cast<double>(kBytes) / 1e6;
  p.d2h_bandwidth = p.h2d_bandwidth;
  p.launch_latency = 0;
  return p;
}

Kernel lasting(double seconds) {
  Kernel k;
  k.name = "long";
  k.cost = KernelCost{0, 0};
  k.cost.seconds = seconds;
  return k;
}

struct Copies {
  SimBackend sim;
  void* device;
  void* host;
  Stream up;
  Stream down;
  explicit Copies(const DeviceProfile& p)
      : sim(p),
        device(sim.allocate_segment(2 * kBytes)),
        host(sim.allocate_pinned(2 * kBytes, -1)),
        up(sim.create_stream()),
        down(sim.create_stream()) {}
  void d2h() { sim.copy_async(host, device, kBytes, CopyKind::device_to_host, down); }
  void h2d() {
    sim.copy_async(static_cast<char*>(device) + kBytes, static_cast<char*>(host) + kBytes, kBytes,
                   CopyKind::host_to_device, up);
  }
};

TEST(SimCopies, DatasheetCopiesRunBesideKernelsAndEachOther) {
  Copies c(profile());
  c.sim.launch(Backend::default_stream(), lasting(2e-3));
  c.d2h();
  c.h2d();
  EXPECT_NEAR(c.sim.stream_time(c.down), 1e-3, 1e-15);
  EXPECT_NEAR(c.sim.stream_time(c.up), 1e-3, 1e-15);
  c.sim.launch(Backend::default_stream(), lasting(1e-3));
  EXPECT_NEAR(c.sim.stream_time(Backend::default_stream()), 3e-3, 1e-15);
}

// copy_overlap 0.25: three quarters of the copy also take the compute engine, so the
// kernel issued after it ends that much later; the copy itself still runs beside.
TEST(SimCopies, TheUnhiddenPartOfACopyTakesTheComputeEngine) {
  DeviceProfile p = profile();
  p.copy_overlap = 0.25;
  Copies c(p);
  c.sim.launch(Backend::default_stream(), lasting(2e-3));
  c.d2h();
  EXPECT_NEAR(c.sim.stream_time(c.down), 1e-3, 1e-15);
  c.sim.launch(Backend::default_stream(), lasting(1e-3));
  EXPECT_NEAR(c.sim.stream_time(Backend::default_stream()), 3.75e-3, 1e-15);
}

// Under a kernel of 0.5 ms a copy runs at half speed (slowdown 2): a quarter of it is done
// when the kernel ends, the rest takes 0.75 ms. Beside the other direction's 1 ms copy at
// slowdown 1.5, two thirds are done by 1 ms and the last third takes a third of a ms.
TEST(SimCopies, CopiesSlowDownWhileKernelsOrTheOtherDirectionRun) {
  DeviceProfile p = profile();
  p.copy_slowdown_under_kernels = 2;
  p.copy_slowdown_both_ways = 1.5;
  Copies under(p);
  under.sim.launch(Backend::default_stream(), lasting(0.5e-3));
  under.d2h();
  EXPECT_NEAR(under.sim.stream_time(under.down), 1.25e-3, 1e-15);
  Copies both(p);
  both.d2h();  // alone: 1 ms
  both.h2d();
  EXPECT_NEAR(both.sim.stream_time(both.down), 1e-3, 1e-15);
  EXPECT_NEAR(both.sim.stream_time(both.up), 4e-3 / 3, 1e-15);
}

// A host that blocked resumes sync_latency after what it waited for; a stream that waited
// on an event resumes as late, and the latency counts as stall. Nothing is charged where
// nothing was waited for.
TEST(SimCopies, WhoeverWaitedResumesSyncLatencyLater) {
  DeviceProfile p = profile();
  p.sync_latency = 20e-6;
  Copies c(p);
  c.d2h();
  const Event done = c.sim.create_event();
  c.sim.record(done, c.down);
  c.sim.wait(Backend::default_stream(), done);
  EXPECT_NEAR(c.sim.stream_time(Backend::default_stream()), 1e-3 + 20e-6, 1e-15);
  EXPECT_NEAR(*c.sim.stalled_seconds(Backend::default_stream()), 1e-3 + 20e-6, 1e-15);
  c.sim.synchronize(done);
  EXPECT_NEAR(c.sim.now(), 1e-3 + 20e-6, 1e-15);
  c.sim.synchronize(done);  // already past: no second charge
  EXPECT_NEAR(c.sim.now(), 1e-3 + 20e-6, 1e-15);
  c.sim.destroy_event(done);
}

// A kernel queued behind another starts kernel_gap after it; one issued to an idle engine
// starts when the host issues it.
TEST(SimCopies, KernelsQueuedBackToBackLoseTheGapBetweenThem) {
  DeviceProfile p = profile();
  p.kernel_gap = 5e-6;
  SimBackend sim(p);
  sim.launch(Backend::default_stream(), lasting(1e-3));
  sim.launch(Backend::default_stream(), lasting(1e-3));
  EXPECT_NEAR(sim.stream_time(Backend::default_stream()), 2e-3 + 5e-6, 1e-15);
  sim.advance_host(1);
  sim.launch(Backend::default_stream(), lasting(1e-3));
  EXPECT_NEAR(sim.stream_time(Backend::default_stream()), 1 + 1e-3, 1e-12);
}

TEST(SimCopies, ProfilesWithoutTheContentionFiguresReadAsADatasheetGpus) {
  std::string json = device_profile_json(profile());
  for (const char* key : {"copy_slowdown_under_kernels", "copy_slowdown_both_ways",
                          "sync_latency_s", "kernel_gap_s"}) {
    const auto at = json.find(std::string("\"") + key + "\"");
    ASSERT_NE(at, std::string::npos) << key;
    json.erase(at, json.find('\n', at) + 1 - at);
  }
  const DeviceProfile q = parse_device_profile(json, "old.json");
  EXPECT_EQ(q.copy_slowdown_under_kernels, 1);
  EXPECT_EQ(q.copy_slowdown_both_ways, 1);
  EXPECT_EQ(q.sync_latency, 0);
  EXPECT_EQ(q.kernel_gap, 0);
}

// The unhidden part of a copy occupies the compute engine but is not a kernel: a copy issued
// after it is slowed only by the other direction, not as if kernels ran.
TEST(SimCopies, OnlyKernelsSlowCopiesAsKernels) {
  DeviceProfile p = profile();
  p.copy_overlap = 0;
  p.copy_slowdown_under_kernels = 4;
  Copies c(p);
  c.h2d();  // 0-1 ms; the compute engine busy with its unhidden part until 1 ms
  c.d2h();
  EXPECT_NEAR(c.sim.stream_time(c.down), 1e-3, 1e-15);
  // A device-to-device copy is a copy kernel: a d2h copy beside it is slowed (its 2 ms at a
  // quarter of the rate do half of the d2h copy; the other half takes 0.5 ms).
  p.hbm_bandwidth = static_cast<double>(kBytes) / 1e-3;  // a 1 MiB d2d copy: 2 ms
  Copies d(p);
  d.sim.copy_async(d.device, static_cast<char*>(d.device) + kBytes, kBytes,
                   CopyKind::device_to_device, Backend::default_stream());
  d.d2h();
  EXPECT_NEAR(d.sim.stream_time(d.down), 2.5e-3, 1e-15);
}

// A wait for an event the host has passed raises the stream's tail to it without a stall;
// synchronize_all over streams of different tails wakes the host once, after the last.
TEST(SimCopies, WaitsWithoutAStallAndSynchronizeAllChargeNoExtraLatency) {
  DeviceProfile p = profile();
  p.sync_latency = 20e-6;
  Copies c(p);
  c.d2h();  // ends at 1 ms
  const Event done = c.sim.create_event();
  c.sim.record(done, c.down);
  c.sim.advance_host(2e-3);
  const Stream other = c.sim.create_stream();
  c.sim.wait(other, done);
  EXPECT_NEAR(c.sim.stream_time(other), 1e-3, 1e-15);
  EXPECT_EQ(*c.sim.stalled_seconds(other), 0);
  c.h2d();  // issued at 2 ms: ends at 3 ms
  c.sim.synchronize_all();
  EXPECT_NEAR(c.sim.now(), 3e-3 + 20e-6, 1e-15);
  c.sim.destroy_event(done);
}

TEST(SimCopies, RejectsFiguresOutsideTheirRange) {
  const auto rejected = [](auto&& set) {
    DeviceProfile p = profile();
    set(p);
    EXPECT_THROW(SimBackend{p}, ConfigError);
  };
  rejected([](DeviceProfile& p) { p.copy_slowdown_under_kernels = 0.5; });
  rejected([](DeviceProfile& p) { p.copy_slowdown_both_ways = 0.99; });
  rejected([](DeviceProfile& p) { p.copy_slowdown_both_ways = std::nan(""); });
  rejected([](DeviceProfile& p) { p.sync_latency = -1e-6; });
  rejected([](DeviceProfile& p) { p.kernel_gap = std::numeric_limits<double>::infinity(); });
}

}  // namespace
}  // namespace memento
