// The static planners: the optimal chain programme against brute force and a closed form,
// what each plan does with each tensor, and plans applied to real training steps.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <tuple>

#include "backend_types.hpp"
#include "memento/error.hpp"
#include "nn/models/gpt2.hpp"
#include "nn/models/mlp.hpp"
#include "nn/nn_rig.hpp"
#include "nn/train.hpp"
#include "policies/plan/chain_dp.hpp"

namespace memento::nn {
namespace {

using namespace memento::plan;  // the planners under test

/// The least recompute over all 3^n assignments (std::nullopt: nothing fits).
std::optional<double> brute_force(const ChainCosts& c, double limit) {
  const std::size_t n = c.input.size();
  std::optional<double> best;
  std::vector<BlockState> s(n);
  std::size_t total = 1;
  for (std::size_t i = 0; i < n; ++i) total *= 3;
  for (std::size_t code = 0; code < total; ++code) {
    std::size_t x = code;
    for (std::size_t i = 0; i < n; ++i, x /= 3) s[i] = static_cast<BlockState>(x % 3);
    auto sol = evaluate_chain(c, s);
    if (sol && sol->peak_bytes <= limit && (!best || sol->recompute_flops < *best))
      best = sol->recompute_flops;
  }
  return best;
}

TEST(ChainDp, MatchesBruteForceOnSmallRandomChains) {
  const std::uint64_t seed = memento::testing::test_seed();
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> bytes(1, 9);
  for (int trial = 0; trial < 300; ++trial) {
    const std::size_t n = 1 + rng() % 7;
    ChainCosts c;
    for (std::size_t i = 0; i < n; ++i) {
      c.input.push_back(bytes(rng));
      c.saved.push_back(bytes(rng) * 2.0);
      c.flops.push_back(bytes(rng) * 10.0);
    }
    const double limit = static_cast<double>(rng() % 120);
    auto want = brute_force(c, limit);
    auto got = solve_chain(c, limit);
    ASSERT_EQ(got.has_value(), want.has_value()) << "trial " << trial << " limit " << limit;
    if (!got) continue;
    EXPECT_EQ(got->recompute_flops, *want) << "trial " << trial << " limit " << limit;
    EXPECT_LE(got->peak_bytes, limit);
    auto check = evaluate_chain(c, got->states);
    ASSERT_TRUE(check.has_value());
    EXPECT_EQ(check->recompute_flops, got->recompute_flops);
  }
}

/// Uniform chain, closed form: keep k blocks whole after n segments holding the other
/// L - k; segment j (0-based, after j segment inputs) holds at most
/// floor((limit - j·a) / (a + s)) blocks; the forward needs k(a+s) + n·a + (a+s). The
/// largest feasible k gives the least recompute (L - k)·f.
std::optional<double> uniform_closed_form(int L, double a, double s, double f, double limit) {
  for (int k = L; k >= 0; --k) {
    const int rest = L - k;
    int n = 0;
    int held = 0;
    while (held < rest) {
      const double room = std::floor((limit - n * a) / (a + s));
      if (room < 1) break;
      held += static_cast<int>(room);
      ++n;
    }
    if (held < rest) continue;
    if (k * (a + s) + n * a + (a + s) <= limit) return (L - k) * f;
  }
  return std::nullopt;
}

TEST(ChainDp, MatchesTheClosedFormOnUniformChains) {
  for (int L : {1, 4, 12, 24, 48})
    for (double a : {1.0, 2.0})
      for (double s : {3.0, 15.0})
        for (int step = 0; step <= 40; ++step) {
          const double limit = std::floor(step * (L + 2) * (a + s) / 40);
          ChainShape shape{L, a, s, 7.0, 0, {}};
          auto got = solve_chain(uniform_chain(shape), limit);
          auto want = uniform_closed_form(L, a, s, 7.0, limit);
          ASSERT_EQ(got.has_value(), want.has_value())
              << "L " << L << " a " << a << " s " << s << " limit " << limit;
          if (got) {
            EXPECT_EQ(got->recompute_flops, *want) << "L " << L << " limit " << limit;
          }
        }
}

TEST(Plans, DecideByBlockAndRole) {
  ChainShape shape{9, 1, 4, 1, 0, {{"att", 1}}};
  auto every = make_plan("every-layer", shape, 0);
  EXPECT_EQ(every->at_release({3, "input"}), PlanAction::keep);
  EXPECT_EQ(every->at_release({3, "fc"}), PlanAction::discard);
  EXPECT_EQ(every->at_release({-1, "logits"}), PlanAction::keep);
  auto sqrt = make_plan("sqrt", shape, 0);  // segments of 3
  EXPECT_EQ(sqrt->at_release({3, "input"}), PlanAction::keep);
  EXPECT_EQ(sqrt->at_release({4, "input"}), PlanAction::discard);
  auto selective = make_plan("selective", shape, 0);
  EXPECT_EQ(selective->at_release({2, "att"}), PlanAction::discard);
  EXPECT_EQ(selective->at_release({2, "qkv"}), PlanAction::keep);
  auto off = make_plan("offload-blocks", shape, 0);
  EXPECT_EQ(off->at_release({0, "qkv"}), PlanAction::offload);
  EXPECT_EQ(off->at_release({8, "qkv"}), PlanAction::keep);
  auto none = make_plan("none", shape, 0);
  EXPECT_EQ(none->at_release({0, "qkv"}), PlanAction::keep);
  // Unlimited: the optimal plan keeps everything.
  EXPECT_EQ(make_plan("optimal", shape, 0)->at_release({0, "qkv"}), PlanAction::keep);
  try {
    (void)make_plan("revolve", shape, 0);
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("none, every-layer, sqrt"), std::string::npos);
  }
}

// Records what the nested plan asks of the tape's blocks.
struct FakeBlocks final : BlockAccess {
  std::vector<bool> resident;  // inputs
  std::vector<std::string> calls;
  bool input_resident(int b) const override { return resident[static_cast<std::size_t>(b)]; }
  void restore_input(int b) override {
    resident[static_cast<std::size_t>(b)] = true;
    calls.push_back(fmt::format("restore {}", b));
  }
  void discard(int b, bool keep_input) override {
    if (!keep_input) resident[static_cast<std::size_t>(b)] = false;
    calls.push_back(fmt::format("discard {}{}", b, keep_input ? " but input" : ""));
  }
};

TEST(Plans, NestedRestoresInnerCheckpointsOneSegmentAtATime) {
  ChainShape shape{27, 1, 4, 1, 0, {}};  // outer segments of 9, inner of 3
  auto nested = make_plan("nested", shape, 0);
  EXPECT_EQ(nested->at_release({9, "input"}), PlanAction::keep);
  EXPECT_EQ(nested->at_release({3, "input"}), PlanAction::discard);
  EXPECT_EQ(nested->at_release({9, "h"}), PlanAction::discard);
  FakeBlocks blocks;
  blocks.resident.assign(27, false);
  for (int b : {0, 9, 18}) blocks.resident[static_cast<std::size_t>(b)] = true;
  // The backward reaches block 26, the last of inner segment [24, 27) of outer [18, 27).
  nested->before_backward(26, blocks);
  EXPECT_EQ(blocks.calls, (std::vector<std::string>{
                              "restore 21", "discard 18 but input", "discard 19", "discard 20",
                              "restore 24", "discard 21 but input", "discard 22", "discard 23"}));
  blocks.calls.clear();
  nested->before_backward(25, blocks);  // same inner segment: nothing to do
  nested->before_backward(23, blocks);  // inner segment [21, 24): its checkpoint is there
  EXPECT_TRUE(blocks.calls.empty());
}

// One step of a model under a plan (no update): its report and its gradients.
template <typename MakeModel>
std::tuple<StepReport, std::vector<std::vector<unsigned char>>> run_plan(
    MakeModel make_model, const std::string& plan_name) {
  auto rig = std::make_unique<testing::Rig>(testing::host_backend(), 0, "lru");
  rig->model = make_model(rig->tape);
  auto plan = make_plan(plan_name, rig->model->chain_shape(), 0);
  rig->tape.set_plan(plan.get());
  Trainer t(rig->tape, *rig->model);
  StepReport r = t.step(false);
  return {r, testing::gradients(*rig)};
}

TEST(Plans, NestedUsesLessMemoryThanSqrtForMoreRecompute) {
  const auto mlp = [](Tape& tape) {
    return make_mlp({.layers = 27, .width = 64, .batch = 256}, tape, 5);
  };
  auto [base, want] = run_plan(mlp, "none");
  auto [sqrt, sqrt_grads] = run_plan(mlp, "sqrt");
  auto [nested, nested_grads] = run_plan(mlp, "nested");
  EXPECT_TRUE(nested_grads == want);
  EXPECT_LT(nested.stats.peak_allocated, sqrt.stats.peak_allocated);
  EXPECT_GT(nested.stats.counters.recomputes, sqrt.stats.counters.recomputes);
}

TEST(Plans, EveryPlanGivesTheSameGradientsWithLessMemory) {
  const auto tiny = [](Tape& tape) { return make_gpt2(gpt2_preset("gpt2-tiny"), tape, 11); };
  auto run = [&](const std::string& name) { return run_plan(tiny, name); };
  auto [base, want] = run("none");
  for (const std::string& name : plan_names()) {
    SCOPED_TRACE(name);
    auto [r, got] = run(name);
    EXPECT_EQ(r.loss, base.loss);
    EXPECT_TRUE(got == want) << "gradients differ";
    if (name == "every-layer" || name == "sqrt" || name == "nested" || name == "selective") {
      EXPECT_LT(r.stats.peak_allocated, base.stats.peak_allocated);
      EXPECT_GT(r.stats.counters.recomputes, 0u);
    }
  }
}

}  // namespace
}  // namespace memento::nn
