// The budget-only path's planner on random step graphs: what it plans fits the target when
// it says so, evicts only what may be evicted, keeps everything when everything fits,
// follows a candidate where it is good, and says when a budget thrashes.
#include "runtime/step_planner.hpp"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <limits>
#include <random>

#include "backend_types.hpp"

namespace memento {
namespace {

// A training-like step: `layers` forward ops, each reading the one before, every output
// kept for a backward that uses them in reverse; some outputs without a recipe, some not
// evictable, and other bytes that grow through the forward (as gradients do).
StepGraph random_step(std::mt19937_64& rng, int layers) {
  std::uniform_int_distribution<std::size_t> bytes(1 << 20, 64 << 20);
  std::uniform_real_distribution<double> seconds(1e-4, 5e-3);
  std::bernoulli_distribution rare(0.1);
  StepGraph g;
  double clock = 0;
  const auto point = [&](double other) {
    g.points.push_back({clock, other});
    return g.points.size() - 1;
  };
  const double other = 256 << 20;
  for (int i = 0; i < layers; ++i) {
    GraphTensor t;
    t.bytes = bytes(rng);
    t.seconds = seconds(rng);
    t.recipe = !rare(rng);
    t.evictable = !rare(rng);
    if (i > 0) {
      t.inputs.push_back(static_cast<std::size_t>(i - 1));
      g.tensors.back().uses.push_back(point(other));
    }
    clock += t.seconds;
    t.created = point(other);
    t.region = i / 4;
    t.role = i % 4 == 0 ? "input" : "body";
    g.tensors.push_back(std::move(t));
  }
  for (int i = layers - 1; i >= 0; --i) {
    clock += 2 * g.tensors[i].seconds;
    g.tensors[i].uses.push_back(point(other + (layers - i) * double(1 << 20)));
    g.tensors[i].freed = point(other);
  }
  return g;
}

double unplanned_peak(const StepGraph& g) {
  return evaluate_plan(g, {}, std::vector<TensorDecision>(g.tensors.size())).peak_bytes;
}

TEST(StepPlanner, PlansFitTheirTargetAndEvictOnlyWhatMayGo) {
  const std::uint64_t seed = testing::test_seed();
  std::mt19937_64 rng(seed);
  for (int round = 0; round < 200; ++round) {
    SCOPED_TRACE(fmt::format("MEMENTO_TEST_SEED={} round {}", seed, round));
    const StepGraph g = random_step(rng, 8 + round % 40);
    const double peak = unplanned_peak(g);
    PlanInputs in;
    in.budget_bytes = peak * std::uniform_real_distribution<double>(0.2, 1.1)(rng);
    if (round % 2 == 0) {  // with a host link half the time
      in.d2h_bandwidth = in.h2d_bandwidth = 20e9;
      in.host_bytes = 1e12;
    }
    const StepPlan plan = plan_step(g, in, {});
    ASSERT_EQ(plan.decisions.size(), g.tensors.size());
    const PlanEvaluation e = evaluate_plan(g, in, plan.decisions);
    EXPECT_EQ(plan.summary.fits, e.peak_bytes <= in.target());
    EXPECT_NEAR(static_cast<double>(plan.summary.predicted_peak), e.peak_bytes, 1.0);
    if (peak <= in.target()) {
      EXPECT_EQ(plan.summary.offloaded + plan.summary.discarded, 0u) << "evicted for nothing";
    }
    ASSERT_EQ(plan.copy_back_at.size(), g.tensors.size());
    for (std::size_t i = 0; i < g.tensors.size(); ++i) {
      const TensorDecision& d = plan.decisions[i];
      if (d.action != PlannedAction::offload) {
        EXPECT_EQ(plan.copy_back_at[i], kNoPoint) << "a copy back for a tensor not offloaded";
      } else if (plan.copy_back_at[i] != kNoPoint) {  // kNoPoint: the host memory was full
        // Between the use it follows and the one it is back for.
        EXPECT_GE(plan.copy_back_at[i], g.tensors[i].uses[d.after_use]);
        EXPECT_LT(plan.copy_back_at[i], g.tensors[i].uses[d.after_use + 1]);
      }
      if (d.action == PlannedAction::keep) continue;
      EXPECT_TRUE(g.tensors[i].evictable);
      EXPECT_LT(d.after_use + 1, g.tensors[i].uses.size());
      if (d.action == PlannedAction::discard) {
        EXPECT_TRUE(g.tensors[i].recipe);
      } else {
        EXPECT_TRUE(in.can_offload());
      }
    }
  }
}

TEST(StepPlanner, ACandidateIsTrimmedToWhatTheBudgetNeeds) {
  std::mt19937_64 rng(7);
  const StepGraph g = random_step(rng, 32);
  PlanInputs in;
  in.budget_bytes = 2 * unplanned_peak(g);  // everything fits
  const PlanCandidate everything{"everything",
                                 [](int, std::string_view) { return PlannedAction::discard; }};
  const StepPlan plan = plan_step(g, in, {everything});
  EXPECT_EQ(plan.summary.discarded, 0u);
  EXPECT_EQ(plan.summary.predicted_extra_seconds, 0.0);
  EXPECT_EQ(plan.summary.candidates, 2);
}

TEST(StepPlanner, ABudgetThatThrashesIsSaidWithOneThatDoesNot) {
  std::mt19937_64 rng(11);
  StepGraph g = random_step(rng, 24);
  for (GraphTensor& t : g.tensors) t.seconds *= 50;  // recompute dearer than the whole step
  for (GraphTensor& t : g.tensors) t.recipe = t.evictable = true;
  const double peak = unplanned_peak(g);
  PlanInputs in;
  in.budget_bytes = 0.35 * peak;
  const StepPlan plan = plan_step(g, in, {});
  EXPECT_TRUE(plan.summary.thrashing);
  ASSERT_TRUE(plan.summary.thrash_free_budget.has_value());
  EXPECT_GT(static_cast<double>(*plan.summary.thrash_free_budget), in.budget_bytes);
  EXPECT_NE(plan.summary.describe().find("thrashes"), std::string::npos) << plan.summary.describe();
  in.budget_bytes = static_cast<double>(*plan.summary.thrash_free_budget);
  const StepPlan enough = plan_step(g, in, {});
  EXPECT_LE(enough.summary.predicted_extra_seconds, enough.summary.observed_seconds);
}

// The same with tensors of 2^62 bytes: the thrash-free budget lies beyond 2^64 bytes, and
// is said as the largest byte count instead of overflowing.
TEST(StepPlanner, AThrashFreeBudgetBeyondTheByteRangeSaturates) {
  std::mt19937_64 rng(11);
  StepGraph g = random_step(rng, 24);
  for (GraphTensor& t : g.tensors) {
    t.seconds *= 50;
    t.recipe = t.evictable = true;
    t.bytes = std::size_t{1} << 62;
  }
  PlanInputs in;
  in.budget_bytes = 0.35 * unplanned_peak(g);
  const StepPlan plan = plan_step(g, in, {});
  EXPECT_TRUE(plan.summary.thrashing);
  ASSERT_TRUE(plan.summary.thrash_free_budget.has_value());
  EXPECT_EQ(*plan.summary.thrash_free_budget, std::numeric_limits<std::size_t>::max());
}

TEST(StepPlanner, OffloadsWhatTheLinkHidesInsteadOfRecomputing) {
  std::mt19937_64 rng(3);
  StepGraph g = random_step(rng, 16);
  for (GraphTensor& t : g.tensors) t.recipe = t.evictable = true;
  PlanInputs in;
  in.budget_bytes = 0.6 * unplanned_peak(g);
  in.d2h_bandwidth = in.h2d_bandwidth = 1e15;  // copies take no time
  in.host_bytes = 1e15;
  const StepPlan plan = plan_step(g, in, {});
  EXPECT_TRUE(plan.summary.fits);
  EXPECT_GT(plan.summary.offloaded, 0u);
  EXPECT_EQ(plan.summary.discarded, 0u);
  EXPECT_NEAR(plan.summary.predicted_extra_seconds, 0.0, 1e-9);
}

// Two tensors A and B (4 MiB) used at the start and again at the end of a step whose middle
// makes two more of 6 MiB: a budget of 15 MiB needs both offloaded. Each copy takes 0.15 s
// on the link; the copies back queue on it so that B (used last) arrives just in time and A's
// copy ends when B's starts: each starts after the last point before its start time.
TEST(StepPlanner, CopiesBackStartAsLateAsTheLinkAllows) {
  constexpr std::size_t kMiB = std::size_t{1} << 20;
  StepGraph g;
  double clock = 0;
  const auto point = [&] {
    g.points.push_back({clock, 0});
    return g.points.size() - 1;
  };
  const auto make = [&](std::size_t bytes) {
    GraphTensor t;
    t.bytes = bytes;
    t.created = point();
    g.tensors.push_back(std::move(t));
    return g.tensors.size() - 1;
  };
  const std::size_t a = make(4 * kMiB), b = make(4 * kMiB);  // points 0, 1
  g.tensors[a].uses.push_back(point());                      // 2
  g.tensors[b].uses.push_back(point());                      // 3
  clock = 0.4;
  const std::size_t c = make(6 * kMiB), d = make(6 * kMiB);  // 4, 5
  g.tensors[c].uses.push_back(point());                      // 6
  g.tensors[d].uses.push_back(point());                      // 7
  clock = 0.6;
  g.tensors[d].freed = point();  // 8
  g.tensors[c].freed = point();  // 9
  clock = 0.8;
  g.tensors[a].uses.push_back(point());  // 10
  g.tensors[b].uses.push_back(point());  // 11
  g.tensors[a].freed = point();          // 12
  g.tensors[b].freed = point();          // 13
  PlanInputs in;
  in.budget_bytes = 15.0 * kMiB;
  in.d2h_bandwidth = in.h2d_bandwidth = 4.0 * kMiB / 0.15;
  in.host_bytes = 1e12;
  const StepPlan plan = plan_step(g, in, {});
  ASSERT_TRUE(plan.summary.fits) << plan.summary.describe();
  ASSERT_EQ(plan.decisions[a].action, PlannedAction::offload);
  ASSERT_EQ(plan.decisions[b].action, PlannedAction::offload);
  EXPECT_NEAR(plan.summary.predicted_extra_seconds, 0.0, 1e-9);
  // B's copy back runs 0.65 s to 0.8 s: after point 9 (0.6 s). A's 0.5 s to 0.65 s: after
  // point 7 (0.4 s), the last before 0.5 s.
  EXPECT_EQ(plan.copy_back_at[b], 9u);
  EXPECT_EQ(plan.copy_back_at[a], 7u);
  EXPECT_EQ(plan.copy_back_at[c], kNoPoint);
  EXPECT_EQ(plan.copy_back_at[d], kNoPoint);
  // Without a link nothing is offloaded, and nothing is copied back.
  in.d2h_bandwidth = in.h2d_bandwidth = 0;
  const StepPlan kept = plan_step(g, in, {});
  EXPECT_EQ(kept.summary.offloaded, 0u);
  EXPECT_EQ(kept.copy_back_at, std::vector<std::size_t>(g.tensors.size(), kNoPoint));
}

}  // namespace
}  // namespace memento
