// The nn layer end to end: gpt2-tiny and a deep MLP trained on the host backend, gradients
// under every policy at 40% of the unlimited peak, and the full-size presets on sim.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "memento/backends.hpp"
#include "memento/error.hpp"
#include "memento/pinned_host_pool.hpp"
#include "memento/runtime.hpp"
#include "nn/models/gpt2.hpp"
#include "nn/models/mlp.hpp"
#include "nn/nn_rig.hpp"
#include "nn/train.hpp"

namespace memento::nn {
namespace {

using testing::gradients;
using testing::Rig;

std::unique_ptr<Backend> host() { return testing::host_backend(); }

TEST(Gpt2, TinyLossFallsOnHost) {
  Rig s(host(), 0, "lru");
  s.model = make_gpt2(gpt2_preset("gpt2-tiny"), s.tape, 42);
  Trainer trainer(s.tape, *s.model, {.lr = 3e-3f});
  const double first = trainer.step().loss;
  double last = first;
  for (int i = 0; i < 40; ++i) last = trainer.step().loss;
  EXPECT_NEAR(first, std::log(256.0), 0.3) << "an untrained model should be near uniform";
  EXPECT_LT(last, first - 1.0) << "first " << first << ", after 41 steps " << last;
}

template <typename Make>
void expect_bit_identical_gradients_under_every_policy(Make make) {
  Rig base(host(), 0, "lru");
  base.model = make(base.tape);
  Trainer t0(base.tape, *base.model);
  StepReport unlimited = t0.step(/*update=*/false);
  const auto want = gradients(base);
  const std::size_t budget = unlimited.stats.peak_reserved * 2 / 5;
  for (const std::string& policy : policy_names()) {
    SCOPED_TRACE(policy);
    Rig s(host(), budget, policy);
    s.model = make(s.tape);
    Trainer t(s.tape, *s.model);
    StepReport r = t.step(/*update=*/false);
    EXPECT_EQ(r.loss, unlimited.loss);
    EXPECT_LE(r.stats.peak_reserved, budget);
    EXPECT_GT(r.stats.counters.discards + r.stats.counters.offloads, 0u) << "nothing evicted";
    EXPECT_TRUE(gradients(s) == want) << "gradients differ from the unlimited run";
  }
}

TEST(Gpt2, TinyGradientsAreBitIdenticalUnderEveryPolicyAt40Percent) {
  expect_bit_identical_gradients_under_every_policy(
      [](Tape& tape) { return make_gpt2(gpt2_preset("gpt2-tiny"), tape, 7); });
}

TEST(Mlp, GradientsAreBitIdenticalUnderEveryPolicyAt40Percent) {
  expect_bit_identical_gradients_under_every_policy([](Tape& tape) {
    return make_mlp({.layers = 12, .width = 256, .batch = 1024, .classes = 10}, tape, 7);
  });
}

TEST(Mlp, LossFallsOnHost) {
  Rig s(host(), 0, "lru");
  s.model = make_mlp({.layers = 4, .width = 64, .batch = 64, .classes = 4}, s.tape, 3);
  Trainer trainer(s.tape, *s.model, {.lr = 3e-3f});
  const double first = trainer.step().loss;
  double last = first;
  for (int i = 0; i < 60; ++i) last = trainer.step().loss;
  EXPECT_LT(last, 0.7 * first) << "first " << first << ", last " << last;
}

/// The forward's kept activations on sim at full size, against the closed form.
void expect_activation_bytes_match(Gpt2Config c, const char* profile) {
  Rig s(make_sim_backend(find_device_profile(profile)), 0, "lru");
  s.model = make_gpt2(c, s.tape, 1);
  s.rt.begin_step();
  const std::size_t before = s.alloc.stats().allocated.current;
  TensorId losses = s.model->forward(s.tape, 0);
  const std::size_t after = s.alloc.stats().allocated.current;
  const double measured = static_cast<double>(after - before);
  // What the forward keeps for the backward, per layer: the layer input and the residual
  // after attention (read by the two layer norms' backward), both norms' outputs, qkv (3),
  // the attention output, the MLP's fc and GELU outputs (4 each) = 16·B·T·C elements, plus
  // with eager attention the scores B·NH·T². After the blocks: the last residual, the final norm's
  // output and the logits B·T·V; the fp32 losses and the int32 tokens and targets.
  const double w = static_cast<double>(dtype_bytes(c.dtype));
  const double btc = static_cast<double>(c.batch) * c.seq * c.channels;
  const double bt = static_cast<double>(c.batch) * c.seq;
  const double want =
      w * (c.layers * (16 * btc + (c.attention == Attention::eager ? bt * c.heads * c.seq : 0)) +
           2 * btc + bt * c.vocab) +
      12 * bt;
  EXPECT_DOUBLE_EQ(want, gpt2_activation_bytes(c)) << "the library's formula drifted";
  EXPECT_NEAR(measured / want, 1.0, 0.03)
      << c.name << ": measured " << measured << " B, formula " << want << " B";
  s.tape.backward(losses, 1.0f);
  s.tape.clear();
  StepStats st = s.rt.end_step();
  EXPECT_GT(st.seconds, 0.0);
  EXPECT_EQ(st.counters.discards + st.counters.offloads, 0u);
}

TEST(Gpt2Sim, FullSizeActivationsMatchTheClosedForm) {
  Gpt2Config xl = gpt2_preset("gpt2-1.5b");
  xl.batch = 4;
  expect_activation_bytes_match(xl, "h200");
  Gpt2Config j = gpt2_preset("gpt-j-6b");
  j.dtype = DType::bf16;
  expect_activation_bytes_match(j, "h200");
  xl.attention = Attention::fused;  // no scores kept
  expect_activation_bytes_match(xl, "h200");
}

TEST(Gpt2Sim, FullSizeStepsRunAndReportPeak) {
  for (const char* name : {"gpt2-1.5b", "gpt-j-6b"}) {
    Gpt2Config c = gpt2_preset(name);
    c.batch = 1;
    c.dtype = DType::bf16;
    Rig s(make_sim_backend(find_device_profile("h200")), 0, "lru");
    s.model = make_gpt2(c, s.tape, 1);
    Trainer t(s.tape, *s.model);
    StepReport r = t.step();
    EXPECT_GT(r.stats.peak_allocated, s.model->parameter_count() * 2) << name;
    EXPECT_GT(r.stats.seconds, 0.0) << name;
  }
}

TEST(Gpt2, PresetsAndErrors) {
  EXPECT_EQ(gpt2_preset_names().size(), 6u);
  try {
    (void)gpt2_preset("gpt3");
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("gpt2-tiny, gpt2-124m"), std::string::npos) << e.what();
  }
  Rig s(host(), 0, "lru");
  Gpt2Config c = gpt2_preset("gpt2-tiny");
  c.dtype = DType::bf16;
  EXPECT_THROW((void)make_gpt2(c, s.tape, 1), LogicError);
  c = gpt2_preset("gpt2-tiny");
  c.heads = 5;
  EXPECT_THROW((void)make_gpt2(c, s.tape, 1), LogicError);
}

}  // namespace
}  // namespace memento::nn
