// The fused attention op (scores as scratch) against the eager pair attention_probs +
// attention_values: the same bits forward and backward, whatever the group of sequences its
// scratch holds; then gpt2-tiny built either way on the host backend: the same loss and
// gradients, less memory, and bit-identical gradients when the runtime recomputes the fused
// op's output under pressure.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <random>
#include <vector>

#include "memento/config.hpp"
#include "memento/error.hpp"
#include "nn/models/gpt2.hpp"
#include "nn/nn_rig.hpp"
#include "nn/nn_test_util.hpp"
#include "nn/ops/ops.hpp"
#include "nn/train.hpp"
#include "policies/plan/mixed_plan.hpp"
#include "policies/plan/plan.hpp"

namespace memento::nn {
namespace {

using plan::make_mixed_plan;
using plan::MixedSolution;
using plan::MixedState;

Storage st(std::vector<float>& v) { return {v.data(), v.size() * sizeof(float)}; }

struct Sizes {
  int B, T, C, NH;
  [[nodiscard]] std::size_t qkv() const { return static_cast<std::size_t>(B * T * 3 * C); }
  [[nodiscard]] std::size_t out() const { return static_cast<std::size_t>(B * T * C); }
  [[nodiscard]] std::size_t scores() const { return static_cast<std::size_t>(B * NH * T * T); }
  /// Scratch bytes the fused op needs for `g` sequences (four score arrays and out each).
  [[nodiscard]] std::size_t scratch(int g) const {
    return static_cast<std::size_t>(g) * (4 * static_cast<std::size_t>(NH * T * T) + T * C) * 4;
  }
};

/// out and the gradient accumulated into a prefilled dqkv, eager or fused (with scratch for
/// `group` sequences).
std::pair<std::vector<float>, std::vector<float>> run(const Sizes& s, bool fused, int group,
                                                      std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<float> qkv = testing::random_vector<float>(rng, s.qkv(), -2, 2);
  std::vector<float> dout = testing::random_vector<float>(rng, s.out());
  std::vector<float> dqkv = testing::random_vector<float>(rng, s.qkv());  // earlier gradients
  std::vector<float> out(s.out(), -1.0f);
  const std::vector<Storage> none(2);
  const std::vector<Storage> dins = {st(dqkv), {}};
  if (fused) {
    const OpPtr op = make_fused_attention(s.B, s.T, s.C, s.NH, DType::f32, s.scratch(group));
    const std::vector<Storage> in = {st(qkv)};
    op->make_kernel(in, st(out), {}).host();
    op->make_backward(in, {}, st(dout), dins, {}).host();
  } else {
    std::vector<float> att(s.scores());
    const OpPtr probs = make_attention_probs(s.B, s.T, s.C, s.NH, DType::f32);
    const OpPtr values = make_attention_values(s.B, s.T, s.C, s.NH, DType::f32);
    const std::vector<Storage> in = {st(qkv)};
    probs->make_kernel(in, st(att), {}).host();
    const std::vector<Storage> in2 = {st(qkv), st(att)};
    values->make_kernel(in2, st(out), {}).host();
    values->make_backward(in2, {}, st(dout), dins, {}).host();
  }
  return {out, dqkv};
}

TEST(FusedAttention, SameBitsAsTheEagerPairForAnyGroup) {
  const Sizes s{5, 12, 16, 4};
  const std::uint64_t seed = testing::test_seed(7);
  SCOPED_TRACE(testing::seed_trace(seed));
  const auto [out, dqkv] = run(s, false, 0, seed);
  // All five sequences at once, two at a time (the last group shorter), one at a time, and
  // one at a time when even one sequence needs more than the scratch allowed.
  for (int group : {5, 2, 1, 0}) {
    SCOPED_TRACE(group);
    const auto [fout, fdqkv] = run(s, true, group, seed);
    EXPECT_EQ(0, std::memcmp(fout.data(), out.data(), out.size() * sizeof(float)));
    EXPECT_EQ(0, std::memcmp(fdqkv.data(), dqkv.data(), dqkv.size() * sizeof(float)));
  }
  // And the output is attention: row 0 of every head attends to position 0 only, so its
  // out is that position's v.
  const auto [fout, _] = run(s, true, 5, seed);
  std::mt19937_64 rng(seed);
  const std::vector<float> qkv = testing::random_vector<float>(rng, s.qkv(), -2, 2);
  for (int c = 0; c < s.C; ++c) EXPECT_EQ(fout[static_cast<std::size_t>(c)], qkv[2 * 16 + c]);
}

TEST(FusedAttention, CostIsAFusedKernelsAndItKeepsNoScores) {
  const int B = 2, T = 8, C = 16, NH = 2, hs = 8;
  const OpPtr op = make_fused_attention(B, T, C, NH, DType::bf16);
  const KernelCost c = op->cost({}, 0);
  const double causal = 2.0 * NH * T * (T + 1) / 2;  // scores on the triangle
  EXPECT_DOUBLE_EQ(c.flops, causal * 4 * hs);
  EXPECT_DOUBLE_EQ(c.bytes, 2.0 * 4 * B * T * C);  // qkv read, out written; no scores
  EXPECT_TRUE(c.tensor_cores);
  EXPECT_EQ(op->grad_inputs(), std::vector<bool>{true});
  EXPECT_FALSE(op->backward_reads_output());
  EXPECT_THROW((void)make_fused_attention(B, T, 15, NH, DType::f32), LogicError);
  EXPECT_THROW((void)make_fused_attention(0, T, C, NH, DType::f32), LogicError);
}

TEST(FusedAttention, ParsesItsNameAndRejectsOthers) {
  EXPECT_EQ(parse_attention("eager"), Attention::eager);
  EXPECT_EQ(parse_attention("fused"), Attention::fused);
  try {
    (void)parse_attention("flash2");
    FAIL() << "flash2 accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("accepted: eager"), std::string::npos) << e.what();
  }
}

Gpt2Config tiny(Attention a) {
  Gpt2Config c = gpt2_preset("gpt2-tiny");
  c.attention = a;
  return c;
}

struct Step {
  StepReport report;
  std::vector<std::vector<unsigned char>> grads;
};

Step step(Attention a, std::size_t budget, const std::string& policy, const Plan* plan = nullptr) {
  testing::Rig rig(testing::host_backend(), budget, policy);
  rig.model = make_gpt2(tiny(a), rig.tape, 11);
  rig.tape.set_plan(plan);
  Trainer trainer(rig.tape, *rig.model);
  Step s{trainer.step(false), {}};
  s.grads = testing::gradients(rig);
  rig.tape.set_plan(nullptr);
  return s;
}

TEST(FusedAttention, Gpt2TinyTrainsTheSameInLessMemory) {
  const Step eager = step(Attention::eager, 0, "lru");
  const Step fused = step(Attention::fused, 0, "lru");
  EXPECT_EQ(fused.report.loss, eager.report.loss);
  EXPECT_TRUE(fused.grads == eager.grads) << "gradients differ";
  // gpt2-tiny's scores: 4 layers of B·NH·T² = 8·4·64² floats (0.5 MiB each).
  EXPECT_LE(fused.report.stats.peak_allocated + 2 * testing::kMiB,
            eager.report.stats.peak_allocated);
  // The closed form agrees.
  EXPECT_LT(gpt2_activation_bytes(tiny(Attention::fused)),
            gpt2_activation_bytes(tiny(Attention::eager)) - 2 * testing::kMiB + 1);
}

TEST(FusedAttention, RecomputedOutputsGiveTheSameGradients) {
  // A plan drops every block's attention output, which the backward of the projection reads:
  // each is recomputed by the fused op from qkv, and the gradients are those of keeping it.
  MixedSolution drop_atty;
  drop_atty.blocks.assign(4, MixedState::selective);
  drop_atty.selective_drops = {"atty"};
  const auto plan = make_mixed_plan(drop_atty, "test");
  const Step base = step(Attention::fused, 0, "lru");
  const Step dropped = step(Attention::fused, 0, "lru", plan.get());
  EXPECT_EQ(dropped.report.loss, base.report.loss);
  EXPECT_TRUE(dropped.grads == base.grads) << "gradients differ";
  EXPECT_EQ(dropped.report.stats.counters.recomputes, 4u);  // one per block, nothing else
  EXPECT_EQ(base.report.stats.counters.recomputes, 0u);
  // And under a budget the recompute policy may drop anything: still the same gradients.
  const auto budget =
      static_cast<std::size_t>(0.6 * static_cast<double>(base.report.stats.peak_allocated));
  const Step tight = step(Attention::fused, budget, "recompute");
  EXPECT_EQ(tight.report.loss, base.report.loss);
  EXPECT_TRUE(tight.grads == base.grads) << "gradients differ";
  EXPECT_LE(tight.report.stats.peak_allocated, budget);
}

TEST(FusedAttention, ChainShapeHasNoScores) {
  for (Attention a : {Attention::eager, Attention::fused}) {
    testing::Rig rig(make_backend(parse_device("sim:a100-40gb", "test")), 0, "lru");
    Gpt2Config c = gpt2_preset("gpt2-124m");
    c.attention = a;
    rig.model = make_gpt2(c, rig.tape, 1);
    const ChainShape shape = rig.model->chain_shape();
    const bool has_att = std::any_of(shape.roles.begin(), shape.roles.end(),
                                     [](const BlockRole& r) { return r.name == "att"; });
    EXPECT_EQ(has_att, a == Attention::eager);
    // 15 B·T·C saved per block (its input is counted apart), plus the scores B·NH·T² when
    // eager (fp32).
    const double btc = 8.0 * 1024 * 768, scores = 8.0 * 12 * 1024 * 1024;
    EXPECT_DOUBLE_EQ(shape.saved_bytes, 4 * (15 * btc + (a == Attention::eager ? scores : 0)));
  }
}

}  // namespace
}  // namespace memento::nn
