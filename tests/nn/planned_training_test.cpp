// The budget-only path with memento's models: losses and gradients bit-identical to the
// unlimited run under the plan and after a budget change, and steps that settle on sim.
#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

#include "memento/backends.hpp"
#include "memento/device_profile.hpp"
#include "memento/runtime.hpp"
#include "nn/models/gpt2.hpp"
#include "nn/nn_rig.hpp"
#include "nn/plan_candidates.hpp"
#include "nn/train.hpp"

namespace memento::nn {
namespace {

using testing::Rig;

void offer_static_plans(Rig& s, std::size_t budget) {
  ChainShape shape = s.model->chain_shape();
  shape.fixed_bytes += 12.0 * static_cast<double>(s.model->parameter_count());
  const DeviceInfo& info = s.backend->info();
  s.rt.set_plan_candidates(
      plan_candidates(shape, {.budget_bytes = static_cast<double>(budget),
                              .matrix_flops = info.matrix_flops,
                              .vector_flops = info.vector_flops,
                              .memory_bandwidth = info.memory_bandwidth,
                              .link_bytes_per_s = std::min(info.h2d_bandwidth, info.d2h_bandwidth),
                              .host_bytes = 256.0 * testing::kMiB}));
}

TEST(PlannedTraining, TinyLossesAndGradientsAreBitIdenticalUnderThePlanAndANewBudget) {
  Rig base(testing::host_backend(), 0, "lru");
  base.model = make_gpt2(gpt2_preset("gpt2-tiny"), base.tape, 7);
  Trainer t0(base.tape, *base.model);
  std::vector<double> want;
  std::size_t peak = 0;
  for (int i = 0; i < 4; ++i) {
    StepReport r = t0.step();
    want.push_back(r.loss);
    peak = std::max(peak, r.stats.peak_reserved);
  }
  const StepReport last = t0.step(/*update=*/false);
  const auto grads = testing::gradients(base);

  const std::size_t budget = peak / 2;
  Rig s(testing::host_backend(), budget, "auto", {.plan_from_observation = true});
  s.model = make_gpt2(gpt2_preset("gpt2-tiny"), s.tape, 7);
  offer_static_plans(s, budget);
  Trainer t(s.tape, *s.model);
  std::vector<StepPhase> phases;
  for (int i = 0; i < 4; ++i) {
    if (i == 3) s.alloc.set_budget(peak * 3 / 5);  // a budget change between steps
    StepReport r = t.step();
    EXPECT_EQ(r.loss, want[i]) << "step " << i;
    EXPECT_LE(r.stats.peak_reserved, s.alloc.budget()) << "step " << i;
    phases.push_back(r.stats.phase);
    ASSERT_TRUE(r.stats.plan.has_value());
    if (i > 0) {
      EXPECT_GT(r.stats.counters.discards + r.stats.counters.offloads, 0u);
    }
  }
  EXPECT_EQ(phases, (std::vector<StepPhase>{StepPhase::observed, StepPhase::planned,
                                            StepPhase::planned, StepPhase::planned}));
  const StepReport mine = t.step(/*update=*/false);
  EXPECT_EQ(mine.loss, last.loss);
  EXPECT_TRUE(testing::gradients(s) == grads) << "gradients differ from the unlimited run";
}

// Ten steps of the main job's model on sim: after the plan, step times do not alternate.
void expect_steps_settle(double share) {
  const auto sim = [] { return make_sim_backend(find_device_profile("a100-40gb")); };
  Gpt2Config c = gpt2_preset("gpt2-124m");
  c.batch = 8;
  Rig base(sim(), 0, "lru");
  base.model = make_gpt2(c, base.tape, 1);
  Trainer t0(base.tape, *base.model);
  std::size_t peak = 0;
  for (int i = 0; i < 2; ++i) peak = std::max(peak, t0.step().stats.peak_reserved);
  const auto budget = static_cast<std::size_t>(share * static_cast<double>(peak));
  Rig s(sim(), budget, "auto", {.plan_from_observation = true});
  s.model = make_gpt2(c, s.tape, 1);
  offer_static_plans(s, budget);
  Trainer t(s.tape, *s.model);
  std::vector<double> seconds;
  for (int i = 0; i < 10; ++i) {
    StepReport r = t.step();
    EXPECT_LE(r.stats.peak_reserved, budget);
    if (i >= 2) seconds.push_back(r.stats.seconds);
  }
  const auto [lo, hi] = std::minmax_element(seconds.begin(), seconds.end());
  EXPECT_LE(*hi / *lo, 1.03) << "steps 3..10 spread from " << *lo << " s to " << *hi << " s";
}

TEST(PlannedTraining, StepsSettleOnSimAt70Percent) { expect_steps_settle(0.7); }
TEST(PlannedTraining, StepsSettleOnSimAt50Percent) { expect_steps_settle(0.5); }

}  // namespace
}  // namespace memento::nn
