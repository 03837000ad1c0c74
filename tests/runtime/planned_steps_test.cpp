// The budget-only path in the runtime: the first step is observed, the plan is in force from
// the second, and it is made again when the program or the budget changes.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>

#include "memento/backends.hpp"
#include "memento/device_profile.hpp"
#include "memento/runtime.hpp"
#include "runtime/test_ops.hpp"
#include "workload/chain_step.hpp"

namespace memento {
namespace {

constexpr std::size_t MiB = std::size_t{1} << 20;
constexpr std::size_t kBytes = 256 * MiB;

struct Sim {
  std::unique_ptr<Backend> backend = make_sim_backend(find_device_profile("a100-40gb"));
  CachingAllocator alloc{*backend, {.budget = 12 * kBytes}};
  PinnedHostPool pool{*backend, std::size_t{64} << 30};
  Runtime rt;
  explicit Sim(bool plan)
      : rt(*backend, alloc, &pool, make_policy("auto"), {.plan_from_observation = plan}) {}
  StepStats step(int layers) {
    return workload::chain_step(rt, std::make_shared<testing::MixOp>(2.3e11), layers, kBytes);
  }
};

TEST(PlannedSteps, TheFirstStepIsObservedAndTheNextFollowThePlan) {
  Sim s(true);
  const StepStats first = s.step(24);
  EXPECT_EQ(first.phase, StepPhase::observed);
  EXPECT_TRUE(first.replanned);
  ASSERT_TRUE(first.plan.has_value());
  EXPECT_GT(first.plan->offloaded + first.plan->discarded, 0u) << first.plan->describe();
  EXPECT_TRUE(first.plan->fits) << first.plan->describe();
  EXPECT_GE(first.plan->candidates, 1);
  for (int i = 0; i < 3; ++i) {
    const StepStats next = s.step(24);
    EXPECT_EQ(next.phase, StepPhase::planned);
    EXPECT_FALSE(next.replanned);
    EXPECT_LE(next.peak_reserved, s.alloc.budget());
    EXPECT_LE(next.seconds, first.seconds * 1.001) << "the plan is slower than the observed step";
  }
  EXPECT_LE(first.peak_reserved, s.alloc.budget());
}

TEST(PlannedSteps, AnotherProgramIsObservedAndPlannedAgain) {
  Sim s(true);
  (void)s.step(24);
  EXPECT_EQ(s.step(24).phase, StepPhase::planned);
  const StepStats changed = s.step(20);
  EXPECT_EQ(changed.phase, StepPhase::observed);
  EXPECT_TRUE(changed.replanned);
  EXPECT_EQ(s.step(20).phase, StepPhase::planned);
}

TEST(PlannedSteps, ANewBudgetIsPlannedForBeforeTheStepRuns) {
  Sim s(true);
  (void)s.step(24);
  (void)s.step(24);
  s.alloc.set_budget(9 * kBytes);
  const StepStats tighter = s.step(24);
  EXPECT_EQ(tighter.phase, StepPhase::planned);
  ASSERT_TRUE(tighter.plan.has_value());
  EXPECT_EQ(tighter.plan->budget_bytes, 9 * kBytes);
  EXPECT_LE(tighter.peak_reserved, 9 * kBytes);
}

TEST(PlannedSteps, TheTraceNamesTheObservedAndThePlannedSteps) {
  const std::string file = ::testing::TempDir() + "planned_steps_trace.json";
  {
    auto backend = make_sim_backend(find_device_profile("a100-40gb"));
    CachingAllocator alloc(*backend, {.budget = 12 * kBytes});
    PinnedHostPool pool(*backend, std::size_t{64} << 30);
    Runtime rt(*backend, alloc, &pool, make_policy("auto"),
               {.trace_file = file, .plan_from_observation = true});
    for (int i = 0; i < 2; ++i)
      (void)workload::chain_step(rt, std::make_shared<testing::MixOp>(2.3e11), 24, kBytes);
  }
  std::ifstream in(file);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("step 0 (observed)"), std::string::npos);
  EXPECT_NE(text.find("step 1 (planned)"), std::string::npos);
  std::remove(file.c_str());
}

TEST(PlannedSteps, WithoutTheOptionNothingIsObservedOrPlanned) {
  Sim s(false);
  const StepStats st = s.step(24);
  EXPECT_EQ(st.phase, StepPhase::dynamic);
  EXPECT_FALSE(st.plan.has_value());
  EXPECT_FALSE(s.rt.plan().has_value());
}

}  // namespace
}  // namespace memento
