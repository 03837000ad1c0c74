// The host AdamW's exposed time on the seed rows (sim, fused attention): the step with the
// modelled CPU update, minus the same step with the update free. Overlapped with the
// backward (the default) against queued after it (host_overlap false, how it ran before).
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>

#include "cli/compare.hpp"

namespace memento::cli {
namespace {

struct Row {
  const char* model;
  int batch;
  const char* device;
  const char* budget;
};

struct Times {  // step seconds
  double unlimited = 0, mixed = 0;
};

Times step_times(const Row& row, const char* attention, bool overlap, double gbps, bool link_bf16) {
  CompareOptions o;
  o.workload.model = row.model;
  o.workload.batch = row.batch;
  o.workload.attention = attention;
  o.workload.host_overlap = overlap;
  o.workload.host_update_gbps = gbps;
  o.workload.link_bf16 = link_bf16;
  o.device = row.device;
  o.budgets = {row.budget};
  o.strategies = {"mixed"};
  o.steps = 2;
  o.print = false;
  const CompareResult r = run_compare(o);
  EXPECT_EQ(r.assumptions["optimizer_state"], "host");
  const RunResult& mixed = r.runs.front();
  EXPECT_TRUE(mixed.fits) << mixed.error;
  return {r.unlimited.step_time_s.value_or(0), mixed.step_time_s.value_or(0)};
}

double exposed(double with, double free) { return (with - free) / with; }

// Prints the row's figures; returns the exposed seconds of the overlapped unlimited step.
double check_row(const Row& row, const char* attention, double gbps, bool link_bf16 = false) {
  const Times over = step_times(row, attention, true, gbps, link_bf16);
  const Times after = step_times(row, attention, false, gbps, link_bf16);
  const Times free = step_times(row, attention, true, 1e9, link_bf16);
  std::printf(
      "%s b%d %s %s, %s attention, %.0f GB/s%s: unlimited %.0f ms overlapped (exposed %.1f%%), "
      "%.0f ms after the backward (%.1f%%), %.0f ms free; mixed at the budget %.0f ms "
      "(%.1f%%), %.0f ms (%.1f%%), %.0f ms free\n",
      row.model, row.batch, row.device, row.budget, attention, gbps, link_bf16 ? ", bf16 link" : "",
      over.unlimited * 1e3, 100 * exposed(over.unlimited, free.unlimited), after.unlimited * 1e3,
      100 * exposed(after.unlimited, free.unlimited), free.unlimited * 1e3, over.mixed * 1e3,
      100 * exposed(over.mixed, free.mixed), after.mixed * 1e3,
      100 * exposed(after.mixed, free.mixed), free.mixed * 1e3);
  EXPECT_LT(over.unlimited, after.unlimited);
  EXPECT_LT(over.mixed, after.mixed);
  return over.unlimited - free.unlimited;
}

const Row kRow1{"gpt2-124m", 32, "sim:a100-40gb", "8GB"};

TEST(HostAdamWExposure, SeedRow1ShowsOnlyTheEmbeddingsUpdate) {
  // The backward hides every update but the tied embedding's, whose gradient is complete
  // only when the backward ends and whose weights the next forward reads first: 50257 x 768
  // parameters at 30 bytes each over the CPU rate.
  for (const double gbps : {40.0, 80.0}) {
    const double embedding = 50257.0 * 768 * 30 / (gbps * 1e9);
    for (const char* attention : {"fused", "eager"})
      EXPECT_LE(check_row(kRow1, attention, gbps), 1.1 * embedding) << attention << gbps;
  }
  // Issue 16's target (at most 15% of the step) from 80 GB/s.
  EXPECT_LE(check_row(kRow1, "fused", 80),
            0.15 * step_times(kRow1, "fused", true, 80, false).unlimited);
  // bf16 gradients: half the gradient bytes on the link, 28 instead of 30 bytes of CPU traffic.
  EXPECT_LE(check_row(kRow1, "fused", 40, true), 1.1 * 50257.0 * 768 * 28 / 40e9);
}

// The CPU update (1.17 s and 4.4 s at 40 GB/s) outlasts these rows' backward: the overlap
// hides a backward's worth of it. Issue 16's target, the exposed update at most 15% of the
// step, holds from 80 GB/s on row 2 and from 160 GB/s on row 3 (a server's CPU; this
// 2-vCPU VM reaches 40): asserted at those rates, the sim being deterministic.
TEST(HostAdamWExposure, SeedRow2) {
  const Row row{"gpt2-1.5b", 16, "sim:rtx4090", "20GB"};
  (void)check_row(row, "fused", 40.0);
  const double at80 = check_row(row, "fused", 80.0);
  EXPECT_LE(at80, 0.15 * step_times(row, "fused", true, 80.0, false).unlimited);
}
TEST(HostAdamWExposure, SeedRow3) {
  const Row row{"gpt-j-6b", 8, "sim:a100-40gb", "32GB"};
  for (const double gbps : {40.0, 80.0}) (void)check_row(row, "fused", gbps);
  const double at160 = check_row(row, "fused", 160.0);
  EXPECT_LE(at160, 0.15 * step_times(row, "fused", true, 160.0, false).unlimited);
}

}  // namespace
}  // namespace memento::cli
