// measure_device on the host backend: every probe gives a usable figure, every kernel of the
// training step is measured, and the sim runs the profile. (How close its predictions come
// is measured by scripts/calibration-check.sh, not asserted: timings here are noisy.)
#include <gtest/gtest.h>

#include <set>

#include "calibrate/calibrate.hpp"
#include "calibrate/sim_runs.hpp"
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
