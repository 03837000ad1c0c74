// The workload choices behind the seed table, on sim: where AdamW lives when --optimizer is
// auto, the reference run of a model larger than the device, and the rows' outcome.
#include <gtest/gtest.h>

#include <algorithm>

#include "cli/compare.hpp"
#include "memento/error.hpp"

namespace memento::cli {
namespace {

CompareOptions sim_options(const std::string& model, int batch, const std::string& device,
                           const std::string& budget) {
  CompareOptions o;
  o.workload.model = model;
  o.workload.batch = batch;
  o.device = device;
  o.budgets = {budget};
  o.strategies = {"every-layer", "optimal"};
  o.steps = 2;
  o.print = false;
  return o;
}

const RunResult& run_named(const CompareResult& r, const std::string& name) {
  auto it = std::find_if(r.runs.begin(), r.runs.end(),
                         [&](const RunResult& x) { return x.strategy.name == name; });
  EXPECT_NE(it, r.runs.end()) << name;
  return *it;
}

TEST(SeedRows, AutoKeepsAdamWOnTheDeviceWhenItFits) {
  CompareOptions o = sim_options("gpt2-124m", 8, "sim:a100-40gb", "70%");
  const CompareResult r = run_compare(o);
  EXPECT_EQ(r.assumptions["optimizer_state"], "device");
  EXPECT_EQ(r.assumptions["dtype"], "fp32");
}

TEST(SeedRows, AutoMovesAdamWToTheHostAndFitsTheFirstRow) {
  const CompareResult r = run_compare(sim_options("gpt2-124m", 32, "sim:a100-40gb", "8GB"));
  EXPECT_EQ(r.assumptions["optimizer_state"], "host");
  EXPECT_EQ(r.assumptions["dtype"], "bf16");
  const RunResult& every = run_named(r, "every-layer");
  EXPECT_TRUE(every.fits) << every.error;
  EXPECT_LE(every.peak_bytes, every.budget_bytes);
}

TEST(SeedRows, TheReferenceOfAModelLargerThanTheDeviceNeverEvicts) {
  const CompareResult r = run_compare(sim_options("gpt2-1.5b", 16, "sim:rtx4090", "20GB"));
  const RunResult& u = r.unlimited;
  EXPECT_GT(u.peak_bytes, r.assumptions["device_capacity_bytes"].get<std::size_t>());
  EXPECT_EQ(u.evictions, 0u);
  EXPECT_EQ(u.recompute_flops, 0.0);
  for (const RunResult& run : r.runs) {
    SCOPED_TRACE(run.strategy.name);
    ASSERT_TRUE(run.fits) << run.error;
    EXPECT_LE(run.peak_bytes, run.budget_bytes);
    EXPECT_GT(*run.overhead, 0.0) << "a budget cannot make the step faster than unlimited";
  }
}

TEST(SeedRows, MixedFitsTheSecondRowForLessThanEveryLayer) {
  CompareOptions o = sim_options("gpt2-1.5b", 16, "sim:rtx4090", "20GB");
  o.strategies = {"every-layer", "mixed"};
  const CompareResult r = run_compare(o);
  const RunResult& every = run_named(r, "every-layer");
  const RunResult& mixed = run_named(r, "mixed");
  ASSERT_TRUE(every.fits && mixed.fits) << every.error << mixed.error;
  EXPECT_GT(mixed.bytes_offloaded, 0u) << "the 4090's link carries some of the blocks";
  EXPECT_LT(mixed.recompute_flops, every.recompute_flops) << mixed.plan_description;
  EXPECT_LT(*mixed.overhead, *every.overhead) << mixed.plan_description;
}

TEST(SeedRows, WithFusedAttentionMixedFitsTheFirstRowForLessThanEveryLayer) {
  // No scores to keep or recompute: the mixed plan drops the cheap roles and offloads a few
  // blocks, every-layer still recomputes every block.
  CompareOptions o = sim_options("gpt2-124m", 32, "sim:a100-40gb", "8GB");
  o.workload.attention = "fused";
  o.strategies = {"every-layer", "mixed"};
  const CompareResult r = run_compare(o);
  EXPECT_EQ(r.assumptions["attention"], "fused");
  const RunResult& every = run_named(r, "every-layer");
  const RunResult& mixed = run_named(r, "mixed");
  ASSERT_TRUE(every.fits && mixed.fits) << every.error << mixed.error;
  EXPECT_LE(mixed.peak_bytes, mixed.budget_bytes);
  EXPECT_LT(mixed.recompute_flops, every.recompute_flops) << mixed.plan_description;
  EXPECT_LT(*mixed.overhead, *every.overhead) << mixed.plan_description;
  // The same row with eager attention peaks higher without a budget: the scores.
  CompareOptions eager = o;
  eager.workload.attention = "eager";
  eager.strategies = {"every-layer"};
  EXPECT_GT(run_compare(eager).unlimited.peak_bytes, r.unlimited.peak_bytes);
}

TEST(SeedRows, BadOptimizerOrDtypeIsAConfigError) {
  CompareOptions o = sim_options("gpt2-124m", 8, "sim:a100-40gb", "70%");
  o.workload.optimizer = "cpu";
  EXPECT_THROW((void)run_compare(o), ConfigError);
  o.workload.optimizer = "auto";
  o.workload.dtype = "fp16";
  EXPECT_THROW((void)run_compare(o), ConfigError);
}

}  // namespace
}  // namespace memento::cli
