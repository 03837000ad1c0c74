// Device profile files: the round trip, what a malformed file is told, `sim:PATH.json`, and
// the duration formula a calibrated profile adds to the datasheet's roofline.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>

#include "../cli/temp_dir_test.hpp"
#include "backends/sim/sim_backend.hpp"
#include "memento/device_profile.hpp"
#include "memento/device_spec.hpp"
#include "memento/error.hpp"

namespace memento {
namespace {

using ProfileFile = cli::testing::TempDirTest;

DeviceProfile measured() {
  DeviceProfile p = find_device_profile("h100-sxm");
  p.source = "a test";
  p.kernel_overhead = 2e-6;
  p.segment_allocate_seconds = 70e-6;
  p.segment_free_seconds = 50e-6;
  p.copy_overlap = 0.25;
  p.copy_slowdown_under_kernels = 1.5;
  p.copy_slowdown_both_ways = 1.75;
  p.sync_latency = 20e-6;
  p.kernel_gap = 3e-6;
  p.host_optimizer_bandwidth = 20e9;
  p.kernels = {{"linear 8x8x8", 1024, 768, true, 3e-6, 12}};
  p.efficiencies = {{"linear 8x8x8", 0.5}, {"layernorm", 0.25}};
  p.stated_rates = StatedRates{0, 0, 0, 12e9, 0};
  p.segments_fall = true;
  return p;
}

void write_text(const std::filesystem::path& path, const std::string& text) {
  std::ofstream(path) << text;
}

TEST_F(ProfileFile, RoundTripsEveryField) {
  std::filesystem::create_directories(dir_);
  const DeviceProfile p = measured();
  const auto path = dir_ / "p.json";
  write_device_profile(p, path);
  const DeviceProfile q = read_device_profile(path);
  EXPECT_EQ(device_profile_json(q), device_profile_json(p));
  EXPECT_EQ(q.kernels.at(0).name, "linear 8x8x8");
  EXPECT_EQ(q.kernels.at(0).samples, 12u);
  EXPECT_EQ(q.efficiencies.size(), 2u);
  EXPECT_DOUBLE_EQ(q.copy_overlap, 0.25);
  EXPECT_DOUBLE_EQ(q.copy_slowdown_under_kernels, 1.5);
  EXPECT_DOUBLE_EQ(q.copy_slowdown_both_ways, 1.75);
  EXPECT_DOUBLE_EQ(q.sync_latency, 20e-6);
  EXPECT_DOUBLE_EQ(q.kernel_gap, 3e-6);
  EXPECT_EQ(q.stated_rates, p.stated_rates);
  EXPECT_TRUE(q.segments_fall);
  // A datasheet profile states its own figures: no stated_rates key.
  const DeviceProfile d = find_device_profile("h100-sxm");
  EXPECT_EQ(device_profile_json(d).find("stated_rates"), std::string::npos);
  EXPECT_FALSE(parse_device_profile(device_profile_json(d), "d").stated_rates.has_value());
}

// The sim states what the measured device's backend stated, so that the runtime on it
// prices work as it did there; a datasheet profile states its figures.
TEST(SimWithProfile, StatesTheMeasuredBackendsRates) {
  SimBackend measured_sim(measured());
  EXPECT_EQ(measured_sim.info().matrix_flops, 0);
  EXPECT_EQ(measured_sim.info().memory_bandwidth, 0);
  EXPECT_EQ(measured_sim.info().h2d_bandwidth, 12e9);
  EXPECT_NE(measured_sim.info().rates_source.find("stated"), std::string::npos);
  SimBackend datasheet(find_device_profile("h100-sxm"));
  EXPECT_EQ(datasheet.info().matrix_flops, 989e12);
  EXPECT_EQ(datasheet.info().h2d_bandwidth, 50e9);
}

TEST_F(ProfileFile, SimDeviceNamesTheFile) {
  std::filesystem::create_directories(dir_);
  const auto path = (dir_ / "gpu.json").string();
  write_device_profile(measured(), path);
  const DeviceSpec spec = parse_device("sim:" + path, "--device");
  EXPECT_EQ(spec.kind, BackendKind::sim);
  EXPECT_EQ(spec.to_string(), "sim:" + path);
  EXPECT_EQ(find_device_profile(spec.profile).segment_allocate_seconds, 70e-6);
}

TEST_F(ProfileFile, MalformedFilesAreNamedWithWhatIsWrong) {
  std::filesystem::create_directories(dir_);
  const auto expect_error = [&](const std::string& text, const std::string& says) {
    const auto path = dir_ / "bad.json";
    write_text(path, text);
    try {
      (void)read_device_profile(path);
      ADD_FAILURE() << "accepted: " << text;
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(path.string()), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(says), std::string::npos) << e.what();
    }
  };
  expect_error("{", "not JSON");
  expect_error("{\"name\": \"x\"}", "memento calibrate");
  expect_error("{\"memento_device_profile\": 2}", "version 2");
  std::string good = device_profile_json(measured());
  std::string negative = good;
  negative.replace(negative.find("\"matrix_flops\": ") + 16, 1, "-");
  expect_error(negative, "matrix_flops");
  std::string overlap = good;
  overlap.replace(overlap.find("\"copy_overlap\": 0.25"), 20, "\"copy_overlap\": 1.5");
  expect_error(overlap, "copy_overlap");
  std::string slowdown = good;
  const std::string fast = "\"copy_slowdown_both_ways\": 1.75";
  slowdown.replace(slowdown.find(fast), fast.size(), "\"copy_slowdown_both_ways\": 0.5");
  expect_error(slowdown, "\"copy_slowdown_both_ways\" is 0.5; accepted: a number >= 1");
  std::string zero = good;
  const std::string under = "\"copy_slowdown_under_kernels\": 1.5";
  zero.replace(zero.find(under), under.size(), "\"copy_slowdown_under_kernels\": \"x\"");
  expect_error(zero, "\"copy_slowdown_under_kernels\" is missing or not a number");
  std::string gap = good;
  gap.insert(gap.find("\"kernel_gap_s\": ") + 16, "-");
  expect_error(gap, "kernel_gap_s");
  std::string latency = good;
  latency.insert(latency.find("\"sync_latency_s\": ") + 18, "-");
  expect_error(latency, "sync_latency_s");
  std::string order = good;
  order.replace(order.find("\"falling\""), 9, "\"down\"");
  expect_error(order, "segment_order");
  std::string stated = good;
  const auto h2d = stated.rfind("\"h2d_bandwidth\": ");  // the stated one: last
  stated.replace(h2d, stated.find(',', h2d) - h2d, "\"h2d_bandwidth\": \"fast\"");
  expect_error(stated, "\"stated_rates\".\"h2d_bandwidth\"");
  std::string stated_kind = good;
  const auto at = stated_kind.find("\"stated_rates\": {");
  stated_kind.replace(at, 17, "\"stated_rates\": [{");
  stated_kind.replace(stated_kind.find('}', at), 1, "}]");
  expect_error(stated_kind, "stated_rates");
  EXPECT_THROW((void)parse_device("sim:" + (dir_ / "missing.json").string(), "--device"),
               ConfigError);
  try {
    (void)parse_device("sim:" + (dir_ / "missing.json").string(), "--device");
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("cannot read the device profile"), std::string::npos)
        << e.what();
  }
}

TEST(KernelSeconds, DatasheetProfilesAreTheRoofline) {
  const DeviceProfile& p = find_device_profile("a100-40gb");
  const KernelCost cost{1e12, 1e9, true};
  EXPECT_DOUBLE_EQ(p.kernel_seconds("linear", cost),
                   roofline_seconds(cost, p.matrix_flops, p.vector_flops, p.hbm_bandwidth));
  EXPECT_EQ(p.source, "datasheet");
}

TEST(KernelSeconds, TableThenEfficiencyThenForwardsEfficiency) {
  const DeviceProfile p = measured();
  const KernelCost same{1024, 768, true};
  EXPECT_DOUBLE_EQ(p.kernel_seconds("linear 8x8x8", same), 3e-6);  // measured
  const KernelCost other{1e12, 1e6, true};
  const double roof = roofline_seconds(other, p.matrix_flops, p.vector_flops, p.hbm_bandwidth);
  EXPECT_DOUBLE_EQ(p.kernel_seconds("linear 8x8x8", other), roof / 0.5 + 2e-6);
  EXPECT_DOUBLE_EQ(p.kernel_seconds("linear 8x8x8 backward", other), roof / 0.5 + 2e-6);
  EXPECT_DOUBLE_EQ(p.kernel_seconds("gelu", other), roof + 2e-6);
  KernelCost fixed = other;
  fixed.seconds = 1.5;
  EXPECT_DOUBLE_EQ(p.kernel_seconds("linear 8x8x8", fixed), 1.5);
  EXPECT_DOUBLE_EQ(p.kernel_seconds("empty", {}), 0.0);
}

// The caching allocator breaks ties by address: the sim hands out segments in the measured
// device's order.
TEST(SimWithProfile, HandsOutSegmentsInTheMeasuredOrder) {
  for (const bool fall : {false, true}) {
    DeviceProfile p = measured();
    p.segments_fall = fall;
    SimBackend sim(p);
    void* a = sim.allocate_segment(1 << 20);
    void* b = sim.allocate_segment(1 << 20);
    EXPECT_EQ(std::less<>{}(b, a), fall);
    sim.free_segment(b, 1 << 20);
    sim.free_segment(a, 1 << 20);
  }
}

TEST(SimWithProfile, ChargesSegmentAllocationAndRelease) {
  const DeviceProfile p = measured();
  SimBackend sim(p);
  void* d = sim.allocate_segment(1 << 20);
  EXPECT_NEAR(sim.now(), 70e-6, 1e-12);
  sim.free_segment(d, 1 << 20);
  EXPECT_NEAR(sim.now(), 120e-6, 1e-12);
}

}  // namespace
}  // namespace memento
