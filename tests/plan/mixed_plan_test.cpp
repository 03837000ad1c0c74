// The mixed planner: its enumeration against a brute force over every per-block assignment
// of the model in mixed_plan.hpp, its limits (budget, link, host memory), its fallback, and
// what its plan does with each tensor.
#include "policies/plan/mixed_plan.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>

#include "backend_types.hpp"
#include "memento/device_profile.hpp"
#include "memento/error.hpp"
#include "nn/models/gpt2.hpp"
#include "nn/nn_rig.hpp"
#include "nn/train.hpp"
#include "policies/plan/chain_dp.hpp"

namespace memento::nn {
namespace {

using namespace memento::plan;  // the planners under test

KernelCost timed(double seconds) {
  KernelCost k(0, 0);
  k.seconds = seconds;
  return k;
}

double sum(const std::vector<KernelCost>& ks) {
  double s = 0;
  for (const KernelCost& k : ks) s += *k.seconds;
  return s;
}

/// The least estimated extra time over every assignment of keep, selective, offload and
/// checkpoint to each block, every number of dropped roles (cheapest per byte first) and
/// both head choices, by the model of mixed_plan.hpp written out again; nullopt: none fits.
std::optional<double> brute_force(const ChainShape& sh, const PlanTarget& t) {
  const int L = sh.blocks;
  const double a = sh.input_bytes, s = sh.saved_bytes;
  const double t_c = sum(sh.recompute_kernels), t_f = sum(sh.block_kernels);
  std::vector<BlockRole> roles;
  for (const BlockRole& r : sh.roles)
    if (!r.recompute.empty()) roles.push_back(r);
  std::stable_sort(roles.begin(), roles.end(), [](const BlockRole& x, const BlockRole& y) {
    return sum(x.recompute) / x.bytes < sum(y.recompute) / y.bytes;
  });
  const std::size_t R = roles.size();
  const auto dropped = [&](std::size_t k, bool seconds) {
    double v = 0;
    for (std::size_t i = 0; i < k; ++i) v += seconds ? sum(roles[i].recompute) : roles[i].bytes;
    return v;
  };
  std::optional<double> best;
  std::vector<int> st(static_cast<std::size_t>(L));
  int total = 1;
  for (int i = 0; i < L; ++i) total *= 4;
  for (int head = 0; head < 2; ++head) {
    // fixed_bytes is the logits and one chunk's gradient here: the blocks may use the
    // budget less the margin; the head adds its bytes to the blocks' shares.
    const double chunk = sh.head_logits_bytes / sh.head_chunks;
    const double limit = t.budget_bytes * 0.97;
    const double head_bytes = head ? 2 * chunk : sh.head_logits_bytes + chunk;
    for (std::size_t ks = 1; ks <= R; ++ks)
      for (std::size_t ko = 0; ko <= R; ++ko)
        for (int code = 0; code < total; ++code) {
          int x = code;
          for (int& v : st) v = x % 4, x /= 4;  // keep, selective, offload, checkpoint
          const double off_block = a + s - dropped(ko, false);
          double resident = 0, extra = head ? sum(sh.head_recompute) : 0;
          int n_off = 0;
          for (int v : st) {
            resident += v == 0 ? a + s : v == 1 ? a + s - dropped(ks, false) : v == 3 ? a : 0;
            extra += v == 1 ? dropped(ks, true) : v == 2 ? dropped(ko, true) : v == 3 ? t_c : 0;
            n_off += v == 2;
          }
          const int lastv = st.back();
          const double last = lastv == 0   ? a + s
                              : lastv == 1 ? a + s - dropped(ks, false)
                              : lastv == 3 ? a
                                           : 0;
          const double link = t.link_bytes_per_s;
          const double copied = n_off * off_block;
          if (n_off > 0) {
            if (link <= 0 || copied > t.host_bytes * kMixedHostShare) continue;
            if (copied / link >
                kMixedLinkShare * std::min(L * t_f, 2.0 * (L - n_off) * t_f) * (1 + 1e-12))
              continue;
          }
          const double in_flight = link > 0 ? std::max(1.0, std::ceil(off_block / link / t_f)) : 1;
          const double peak = std::max(
              resident + head_bytes,
              resident - last + a + s +
                  std::max(sh.backward_bytes, std::min<double>(n_off, in_flight) * off_block));
          if (peak > limit) continue;
          if (!best || extra < *best) best = extra;
        }
  }
  return best;
}

ChainShape random_shape(std::mt19937_64& rng, int blocks) {
  std::uniform_real_distribution<double> u(0.5, 4.0);
  ChainShape sh;
  sh.blocks = blocks;
  sh.input_bytes = u(rng);
  sh.roles = {{"att", u(rng) * 2, {timed(u(rng))}},
              {"gelu", u(rng), {timed(u(rng))}},
              {"fc", u(rng) * 2, {}},
              {"ln", u(rng), {timed(u(rng) / 2)}}};
  for (const BlockRole& r : sh.roles) sh.saved_bytes += r.bytes;
  sh.recompute_kernels = {timed(u(rng) * 3)};
  sh.block_kernels = {sh.recompute_kernels[0], timed(u(rng))};
  sh.backward_bytes = u(rng) * 2;
  sh.head_chunks = 2;
  sh.head_logits_bytes = u(rng) * 4;
  sh.head_recompute = {timed(u(rng))};
  sh.fixed_bytes = sh.head_logits_bytes + sh.head_logits_bytes / 2;
  return sh;
}

TEST(MixedPlan, MatchesBruteForceOnSmallChains) {
  std::mt19937_64 rng(memento::testing::test_seed());
  std::uniform_real_distribution<double> u(0, 1);
  int fits = 0, none = 0, offloading = 0;
  for (int trial = 0; trial < 60; ++trial) {
    const int L = 1 + trial % 4;
    const ChainShape sh = random_shape(rng, L);
    const double full = sh.fixed_bytes + L * (sh.input_bytes + sh.saved_bytes) * 1.5;
    PlanTarget t{.budget_bytes = full * u(rng) / 0.97,
                 .link_bytes_per_s = trial % 3 == 0 ? 0 : 0.5 + u(rng) * 3,
                 .host_bytes = u(rng) * L * 20};
    SCOPED_TRACE(::testing::Message() << "trial " << trial << " L " << L);
    const std::optional<MixedSolution> got = solve_mixed(sh, t);
    const std::optional<double> want = brute_force(sh, t);
    ASSERT_EQ(got.has_value(), want.has_value());
    if (!got) {
      ++none;
      continue;
    }
    ++fits;
    EXPECT_NEAR(got->extra_seconds, *want, 1e-9 * (1 + *want));
    EXPECT_EQ(got->blocks.size(), static_cast<std::size_t>(L));
    const auto offloads = std::count(got->blocks.begin(), got->blocks.end(), MixedState::offload);
    offloading += static_cast<int>(offloads);
    if (t.link_bytes_per_s == 0) {
      EXPECT_EQ(offloads, 0);
    }
    EXPECT_LE(got->offload_bytes, t.host_bytes * kMixedHostShare);
  }
  // The trials cover the cases (the seed is fixed unless MEMENTO_TEST_SEED says otherwise).
  EXPECT_GT(fits, 10);
  EXPECT_GT(none, 3);
  EXPECT_GT(offloading, 0);
}

TEST(MixedPlan, KeepsEverythingWithoutABudget) {
  std::mt19937_64 rng(3);
  const ChainShape sh = random_shape(rng, 6);
  const std::optional<MixedSolution> s = solve_mixed(sh, PlanTarget{});
  ASSERT_TRUE(s);
  EXPECT_EQ(std::count(s->blocks.begin(), s->blocks.end(), MixedState::keep), 6);
  EXPECT_FALSE(s->discard_logits);
  EXPECT_EQ(s->extra_seconds, 0);
  auto plan = make_plan("mixed", sh, 0);
  EXPECT_EQ(plan->at_release({2, "att"}), PlanAction::keep);
  EXPECT_EQ(plan->at_release({-1, "logits"}), PlanAction::keep);
}

TEST(MixedPlan, FallsBackToSegmentsWhenNoSingleBlockStateFits) {
  // Twelve blocks of a = 4 (large inputs), s = 2: checkpointing every block keeps 48, and
  // restoring one more block on top needs 50; with segments of three blocks the chain needs
  // 16 inputs plus a restored segment of 18 = 34, within 36.
  ChainShape sh{12, 4, 2, 1, 0, {{"att", 1, {timed(1)}}}};
  sh.recompute_kernels = {timed(5)};
  sh.block_kernels = {timed(6)};
  const PlanTarget t{.budget_bytes = 36 / 0.97};
  EXPECT_FALSE(solve_mixed(sh, t));
  auto plan = make_mixed_plan(sh, t);
  EXPECT_NE(plan->describe().find("optimal chain's segments"), std::string::npos)
      << plan->describe();
  int discarded = 0;
  for (int b = 0; b < 12; ++b) discarded += plan->at_release({b, "input"}) == PlanAction::discard;
  EXPECT_GT(discarded, 0);
  // Too small even for that: every block checkpointed.
  auto tiny = make_mixed_plan(sh, PlanTarget{.budget_bytes = 1});
  EXPECT_NE(tiny->describe().find("nothing fits"), std::string::npos);
  EXPECT_EQ(tiny->at_release({5, "input"}), PlanAction::keep);
  EXPECT_EQ(tiny->at_release({5, "att"}), PlanAction::discard);
}

TEST(MixedPlan, EachStateDecidesByRole) {
  MixedSolution s;
  s.blocks = {MixedState::offload, MixedState::checkpoint, MixedState::selective, MixedState::keep,
              MixedState::discard};
  s.selective_drops = {"att", "gelu"};
  s.offload_drops = {"att"};
  s.discard_logits = true;
  auto plan = make_mixed_plan(s, "test");
  EXPECT_EQ(plan->at_release({0, "att"}), PlanAction::discard);
  EXPECT_EQ(plan->at_release({0, "gelu"}), PlanAction::offload);
  EXPECT_EQ(plan->at_release({0, "input"}), PlanAction::offload);
  EXPECT_EQ(plan->at_release({1, "input"}), PlanAction::keep);
  EXPECT_EQ(plan->at_release({1, "qkv"}), PlanAction::discard);
  EXPECT_EQ(plan->at_release({2, "gelu"}), PlanAction::discard);
  EXPECT_EQ(plan->at_release({2, "qkv"}), PlanAction::keep);
  EXPECT_EQ(plan->at_release({3, "att"}), PlanAction::keep);
  EXPECT_EQ(plan->at_release({4, "input"}), PlanAction::discard);
  EXPECT_EQ(plan->at_release({-1, "logits"}), PlanAction::discard);
  EXPECT_EQ(plan->at_release({-1, "lnf"}), PlanAction::keep);
  const std::string d = plan->describe();
  EXPECT_NE(d.find("block 0 offloaded (att recomputed)"), std::string::npos) << d;
  EXPECT_NE(d.find("block 2 selective (att, gelu recomputed)"), std::string::npos) << d;
  EXPECT_NE(d.find("logits recomputed chunk by chunk"), std::string::npos) << d;
}

TEST(MixedPlan, EveryStateTrainsBitIdenticallyOnTheHost) {
  // gpt2-tiny's four blocks offloaded, checkpointed, selective and kept, the logits (two
  // chunks) recomputed: the same loss and gradients as keeping everything, in less memory.
  Gpt2Config c = gpt2_preset("gpt2-tiny");
  c.head_chunks = 2;
  MixedSolution mix;
  mix.blocks = {MixedState::offload, MixedState::checkpoint, MixedState::selective,
                MixedState::keep};
  mix.selective_drops = {"ln1", "att", "gelu", "fc"};
  mix.offload_drops = {"att", "qkv"};
  mix.discard_logits = true;
  auto run = [&](const Plan& plan) {
    testing::Rig rig(testing::host_backend(), 0, "lru");
    rig.model = make_gpt2(c, rig.tape, 11);
    rig.tape.set_plan(&plan);
    Trainer trainer(rig.tape, *rig.model);
    StepReport r = trainer.step(false);
    auto grads = testing::gradients(rig);
    rig.tape.set_plan(nullptr);
    return std::pair{r, grads};
  };
  const auto none = make_plan("none", ChainShape{4, 1, 1, 1, 0, {}}, 0);
  const auto mixed = make_mixed_plan(mix, "test");
  const auto [base, want] = run(*none);
  const auto [got, grads] = run(*mixed);
  EXPECT_EQ(got.loss, base.loss);
  EXPECT_TRUE(grads == want) << "gradients differ";
  EXPECT_GT(got.stats.counters.offloads, 0u);
  EXPECT_GT(got.stats.counters.recomputes, 0u);
  EXPECT_LT(got.stats.peak_allocated, base.stats.peak_allocated);
}

}  // namespace
}  // namespace memento::nn

namespace memento::nn {
namespace {

using namespace memento::plan;  // the planners under test

TEST(SelectivePlan, DropsTheFewestCheapestRolesThatFit) {
  // Four blocks of a = 1 and s = 10 in roles x (4 B, 1 s), y (3 B, 3 s), z (2 B, 4 s) and a
  // role nothing recomputes: x is cheapest per byte, then y, then z. Every block dropping
  // its k cheapest keeps 11 - d_k, and the peak (three blocks thinned, the last restored
  // whole) is 3 (11 - d_k) + 11: 32, 23 and 17 for k = 1, 2, 3.
  ChainShape sh{
      4, 1, 10,
      1, 0, {{"z", 2, {timed(4)}}, {"x", 4, {timed(1)}}, {"y", 3, {timed(3)}}, {"w", 1, {}}}};
  const auto limit = [](double bytes) { return PlanTarget{.budget_bytes = bytes / 0.97}; };
  const auto drops = [&](const PlanTarget& t) { return solve_selective(sh, t)->selective_drops; };
  using Names = std::vector<std::string>;
  EXPECT_EQ(drops(limit(32)), Names({"x"}));
  EXPECT_EQ(drops(limit(31.9)), Names({"x", "y"}));
  EXPECT_EQ(drops(limit(23)), Names({"x", "y"}));
  EXPECT_EQ(drops(limit(22.9)), Names({"x", "y", "z"}));
  EXPECT_EQ(drops(PlanTarget{}), Names({"x"}));  // no budget: the cheapest alone
  const MixedSolution s = *solve_selective(sh, limit(30));
  EXPECT_DOUBLE_EQ(s.extra_seconds, 4 * (1 + 3));
  EXPECT_DOUBLE_EQ(s.peak_bytes, 23);
  EXPECT_EQ(std::count(s.blocks.begin(), s.blocks.end(), MixedState::selective), 4);
  // Nothing fits: every role that can be recomputed, and the description says it misses.
  EXPECT_EQ(drops(limit(10)), Names({"x", "y", "z"}));
  auto over = make_plan("selective", sh, 10 / 0.97);
  EXPECT_NE(over->describe().find("still over the budget"), std::string::npos);
  // The plan: named selective, its roles dropped in every block, the rest and logits kept.
  auto plan = make_plan("selective", sh, 30 / 0.97);
  EXPECT_EQ(plan->name(), "selective");
  EXPECT_EQ(plan->at_release({3, "y"}), PlanAction::discard);
  EXPECT_EQ(plan->at_release({0, "z"}), PlanAction::keep);
  EXPECT_EQ(plan->at_release({0, "w"}), PlanAction::keep);
  EXPECT_EQ(plan->at_release({0, "input"}), PlanAction::keep);
  EXPECT_EQ(plan->at_release({-1, "logits"}), PlanAction::keep);
}

TEST(SelectivePlan, WithoutRecomputeKernelsDropsTheScoresAlone) {
  ChainShape sh{3, 1, 4, 1, 0, {{"att", 2}, {"fc", 2}}};
  EXPECT_FALSE(solve_selective(sh, PlanTarget{}));
  auto plan = make_plan("selective", sh, 0);
  EXPECT_EQ(plan->at_release({1, "att"}), PlanAction::discard);
  EXPECT_EQ(plan->at_release({1, "fc"}), PlanAction::keep);
  sh.roles = {{"fc", 2}};
  EXPECT_NE(make_plan("selective", sh, 0)->describe().find("all kept"), std::string::npos);
}

}  // namespace
}  // namespace memento::nn

namespace memento::nn {
namespace {

using namespace memento::plan;  // the planners under test

TEST(SelectivePlan, ThinsGpt2TinyForABudgetWithTheSameGradients) {
  // The smallest budget at which selective still fits by its model drops several roles per
  // block: the same loss and gradients as keeping everything, in less memory, and the
  // description names the dropped roles and no budget miss.
  auto run = [](const Plan* plan) {
    testing::Rig rig(testing::host_backend(), 0, "lru");
    rig.model = make_gpt2(gpt2_preset("gpt2-tiny"), rig.tape, 11);
    rig.tape.set_plan(plan);
    Trainer trainer(rig.tape, *rig.model);
    StepReport r = trainer.step(false);
    auto grads = testing::gradients(rig);
    rig.tape.set_plan(nullptr);
    return std::pair{r, grads};
  };
  testing::Rig probe(make_sim_backend(find_device_profile("a100-40gb")), 0, "lru");
  probe.model = make_gpt2(gpt2_preset("gpt2-tiny"), probe.tape, 11);
  const ChainShape shape = probe.model->chain_shape();
  std::optional<MixedSolution> tight;
  double tight_budget = 0;
  for (double budget = 64.0 * (1 << 20);; budget *= 0.95) {  // until every role must go
    const std::optional<MixedSolution> s = solve_selective(shape, {.budget_bytes = budget});
    ASSERT_TRUE(s);
    if (s->selective_drops.size() == shape.roles.size()) break;
    tight = s;
    tight_budget = budget;
  }
  ASSERT_TRUE(tight);
  ASSERT_GE(tight->selective_drops.size(), 3u);
  const auto plan = make_plan("selective", shape, tight_budget);
  EXPECT_NE(plan->describe().find("that fit the budget"), std::string::npos) << plan->describe();
  const auto none = make_plan("none", shape, 0);
  const auto [base, want] = run(none.get());
  const auto [got, grads] = run(plan.get());
  EXPECT_EQ(got.loss, base.loss);
  EXPECT_TRUE(grads == want) << "gradients differ";
  EXPECT_GE(got.stats.counters.recomputes, 4 * tight->selective_drops.size());
  EXPECT_LT(got.stats.peak_allocated, base.stats.peak_allocated);
}

}  // namespace
}  // namespace memento::nn
