// measure_device on the host backend: every probe gives a usable figure, every kernel of the
// training step is measured, and the sim runs the profile. (How close its predictions come
// is measured by scripts/calibration_check.py, not asserted: timings here are noisy.)
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>

#include "backends/sim/sim_backend.hpp"
#include "calibrate/calibrate.hpp"
#include "calibrate/kernel_table.hpp"
#include "calibrate/sim_runs.hpp"
#include "calibrate/trace_spans.hpp"
#include "memento/backends.hpp"
#include "memento/error.hpp"

namespace memento::calibrate {
namespace {

CalibrateOptions small() {
  CalibrateOptions o;
  o.model = nn::gpt2_preset("gpt2-tiny");
  o.model.batch = 2;
  o.steps = 2;
  o.repeats = 2;
  o.copy_bytes = std::size_t{4} << 20;
  return o;
}

TEST(MeasureHost, EveryProbeAndEveryKernelOfTheStep) {
  auto host = make_host_backend({});
  const DeviceProfile p = measure_device(*host, small());
  EXPECT_GT(p.vector_flops, 0);
  EXPECT_GT(p.hbm_bandwidth, 0);
  EXPECT_GT(p.h2d_bandwidth, 0);
  EXPECT_GT(p.d2h_bandwidth, 0);
  EXPECT_GT(p.host_optimizer_bandwidth, 0);
  EXPECT_GE(p.copy_overlap, 0);
  EXPECT_LE(p.copy_overlap, 1);
  // The contention figures the sim reads (it rejects what is out of range).
  EXPECT_TRUE(std::isfinite(p.copy_slowdown_under_kernels));
  EXPECT_TRUE(std::isfinite(p.copy_slowdown_both_ways));
  EXPECT_TRUE(std::isfinite(p.sync_latency));
  EXPECT_NO_THROW(SimBackend{p});
  EXPECT_GT(p.kernel_gap, 0);  // a CPU stream worker hands over between kernels
  EXPECT_EQ(p.capacity, host->info().capacity);
  EXPECT_NE(p.source.find("measured by memento calibrate on host"), std::string::npos);
  std::set<std::string> names;
  for (const MeasuredKernel& k : p.kernels) {
    names.insert(k.name);
    EXPECT_GE(k.seconds, 0) << k.name;
    EXPECT_GT(k.samples, 0u) << k.name;
  }
  for (const char* name : {"linear 128x64x192", "linear 128x64x192 backward", "layernorm",
                           "layernorm backward", "attention probs", "adamw"})
    EXPECT_TRUE(names.count(name)) << name << " was not measured";
  // The sim runs on it, and every kernel of the step takes its measured time there.
  const SimRun run = sim_run(p, small().model, "none", 0);
  EXPECT_GT(run.step_seconds, 0);
}

// Both ways of timing kernels see every kernel of the step; the profile records what the
// host backend stated to the cost model (no compute rates).
TEST(MeasureHost, StreamAndBlockingTimingMeasureTheSameKernels) {
  auto host = make_host_backend({});
  CalibrateOptions o = small();
  const DeviceProfile stream = measure_device(*host, o);
  o.timing = KernelTiming::blocking;
  const DeviceProfile blocking = measure_device(*host, o);
  std::set<std::string> a, b;
  for (const MeasuredKernel& k : stream.kernels) a.insert(k.name);
  for (const MeasuredKernel& k : blocking.kernels) b.insert(k.name);
  EXPECT_EQ(a, b);
  ASSERT_TRUE(stream.stated_rates.has_value());
  EXPECT_EQ(stream.stated_rates->matrix_flops, host->info().matrix_flops);
  EXPECT_EQ(stream.stated_rates->h2d_bandwidth, host->info().h2d_bandwidth);
}

TEST(KernelSpans, ReadsKernelSpansFromATraceAndSaysWhatIsWrong) {
  const auto path = std::filesystem::temp_directory_path() /
                    ("memento_kernel_spans_" +
                     std::to_string(::testing::UnitTest::GetInstance()->random_seed()) + ".json");
  std::ofstream(path) << R"({"traceEvents": [
    {"ph": "X", "cat": "kernel", "name": "gelu", "ts": 10, "dur": 4,
     "args": {"kernel": "gelu", "flops": 8, "bytes": 16, "tensor_cores": false}},
    {"ph": "X", "cat": "kernel", "name": "linear 1x2x3", "ts": 2000000, "dur": 7,
     "args": {"kernel": "linear 1x2x3", "flops": 12, "bytes": 24, "tensor_cores": true}},
    {"ph": "X", "cat": "step", "name": "step 1", "ts": 1800000, "dur": 900000},
    {"ph": "X", "cat": "step", "name": "step 0", "ts": 5, "dur": 1500000},
    {"ph": "X", "cat": "compute", "name": "gelu", "ts": 2000000, "dur": 9}]})";
  EXPECT_DOUBLE_EQ(TraceSpans(path).first_step_end(), 1.500005);
  const std::vector<KernelSample> all = TraceSpans(path).kernels();
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].name, "gelu");
  EXPECT_DOUBLE_EQ(all[0].seconds, 4e-6);
  EXPECT_DOUBLE_EQ(all[0].start, 10e-6);
  EXPECT_EQ(all[1].cost.tensor_cores, true);
  EXPECT_DOUBLE_EQ(all[1].cost.bytes, 24);
  const std::vector<KernelSample> later = TraceSpans(path).kernels(1.0);  // from 1 s on
  ASSERT_EQ(later.size(), 1u);
  EXPECT_EQ(later[0].name, "linear 1x2x3");
  std::ofstream(path) << "[1, 2]";  // the array format, with no spans
  EXPECT_TRUE(TraceSpans(path).kernels().empty());
  const auto expect_error = [&](const char* text, const char* says) {
    std::ofstream(path) << text;
    try {
      (void)TraceSpans(path).kernels();
      ADD_FAILURE() << "accepted: " << text;
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(says), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(path.string()), std::string::npos) << e.what();
    }
  };
  expect_error(R"({"events": []})", "traceEvents");
  expect_error(R"({"traceEvents": [{"ph": "X", "cat": "kernel", "name": "k", "ts": 1, "dur": 2,
    "args": {"kernel": "k", "flops": 1, "bytes": 1, "tensor_cores": 1}}]})",
               "event 0 (kernel span)");
  std::filesystem::remove(path);
}

// Spans out of order, one overlapping its predecessor (no gap), gaps of 1, 3 and 5 us and
// one long wait: the longest tenth is left out, the rest averaged, queued kernels included.
TEST(KernelSpans, TheGapBetweenKernelsIsTheMeanOfAllButTheWaits) {
  const auto span = [](double start_us, double us) {
    KernelSample s;
    s.start = start_us * 1e-6;
    s.seconds = us * 1e-6;
    return s;
  };
  std::vector<KernelSample> spans;
  double t = 0;
  for (const double gap : {0.0, 1.0, 3.0, 5.0, 0.0, 1.0, 3.0, 5.0, 0.0, 1000.0}) {
    spans.push_back(span(t, 10));
    t += 10 + gap;
  }
  spans.push_back(span(t, 10));
  spans.push_back(span(t + 2, 4));  // inside the last: no gap
  std::swap(spans[0], spans[5]);
  // Gaps, sorted: 0 0 0 0 1 1 3 3 5 5 1000; nine tenths of 11 keep 9: 13 us / 9.
  EXPECT_NEAR(mean_kernel_gap(spans), 13e-6 / 9, 1e-15);
  EXPECT_EQ(mean_kernel_gap({span(0, 1)}), 0);
}

TEST(MeasureHost, RefusesAModel) {
  auto sim = make_sim_backend(find_device_profile("h200"));
  EXPECT_THROW((void)measure_device(*sim, small()), ConfigError);
  CalibrateOptions one = small();
  one.steps = 1;
  auto host = make_host_backend({});
  EXPECT_THROW((void)measure_device(*host, one), ConfigError);
}

}  // namespace
}  // namespace memento::calibrate
