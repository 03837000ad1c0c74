// AdamW on the host (ZeRO-Offload style): the tape hands each parameter's gradient over as
// soon as it is complete, the CPU update equals the device one bit for bit, and the device
// keeps neither m, v nor the finished gradients.
#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <vector>

#include "memento/backends.hpp"
#include "memento/config.hpp"
#include "nn/models/gpt2.hpp"
#include "nn/nn_rig.hpp"
#include "nn/train.hpp"

namespace memento::nn {
namespace {

using testing::Rig;

struct Trained {
  std::vector<double> losses;
  std::vector<std::vector<unsigned char>> params;
  std::size_t peak = 0;
};

Trained train_tiny(OptimizerPlacement where, std::size_t budget, const std::string& policy,
                   int steps, bool skip_first_update = false) {
  Rig s(testing::host_backend(), budget, policy);
  s.model = make_gpt2(gpt2_preset("gpt2-tiny"), s.tape, 7);
  Trainer trainer(s.tape, *s.model, {.lr = 3e-3f, .placement = where});
  Trained out;
  for (int i = 0; i < steps; ++i) {
    StepReport r = trainer.step(!(skip_first_update && i == 0));
    out.losses.push_back(r.loss);
    out.peak = std::max(out.peak, r.stats.peak_reserved);
  }
  for (TensorId p : s.tape.parameters()) {
    out.params.emplace_back(s.tape.bytes(p));
    s.tape.read(p, out.params.back().data(), out.params.back().size());
  }
  return out;
}

TEST(HostAdamW, EqualsTheDeviceUpdateBitForBit) {
  const Trained device = train_tiny(OptimizerPlacement::device, 0, "lru", 3);
  const Trained host = train_tiny(OptimizerPlacement::host, 0, "lru", 3);
  ASSERT_EQ(device.losses.size(), host.losses.size());
  for (std::size_t i = 0; i < device.losses.size(); ++i)
    EXPECT_EQ(device.losses[i], host.losses[i]) << "step " << i;
  ASSERT_EQ(device.params.size(), host.params.size());
  for (std::size_t i = 0; i < device.params.size(); ++i)
    EXPECT_EQ(device.params[i], host.params[i]) << "parameter " << i;
  EXPECT_NE(device.losses.front(), device.losses.back()) << "the steps must change something";
}

TEST(HostAdamW, AStepWithoutUpdateThenUpdatesMatchesTheDevice) {
  // step(false) computes gradients and applies none; the next updates apply their own
  // (AdamW's step count t counts every step on both placements).
  const Trained device = train_tiny(OptimizerPlacement::device, 0, "lru", 3, true);
  const Trained host = train_tiny(OptimizerPlacement::host, 0, "lru", 3, true);
  EXPECT_EQ(device.losses, host.losses);
  EXPECT_EQ(device.params, host.params);
}

TEST(HostAdamW, BitIdenticalUnderABudgetWithEveryEviction) {
  const Trained free_run = train_tiny(OptimizerPlacement::host, 0, "lru", 2);
  const std::size_t budget = free_run.peak * 2 / 5;
  for (const char* policy : {"recompute", "offload", "auto"}) {
    SCOPED_TRACE(policy);
    const Trained tight = train_tiny(OptimizerPlacement::host, budget, policy, 2);
    EXPECT_EQ(tight.losses, free_run.losses);
    EXPECT_EQ(tight.params, free_run.params);
    EXPECT_LE(tight.peak, budget);
  }
}

TEST(HostAdamW, TapeHandsEachGradientOverOnceAndForgetsIt) {
  Rig s(testing::host_backend(), 0, "lru");
  s.model = make_gpt2(gpt2_preset("gpt2-tiny"), s.tape, 7);
  std::map<TensorId, int> seen;
  s.tape.set_grad_ready_hook([&](TensorId p, void* grad, std::size_t bytes) {
    ++seen[p];
    EXPECT_EQ(bytes, s.tape.bytes(p)) << "fp32 parameters have fp32 gradients";
    s.alloc.deallocate(grad);
  });
  s.rt.begin_step();
  TensorId losses = s.model->forward(s.tape, 0);
  s.tape.backward(losses, 1.0f);
  s.tape.clear();
  (void)s.rt.end_step();
  EXPECT_EQ(seen.size(), s.tape.parameters().size());
  for (TensorId p : s.tape.parameters()) {
    EXPECT_EQ(seen[p], 1) << "parameter " << p;
    EXPECT_EQ(s.tape.grad(p), nullptr);
  }
  s.tape.set_grad_ready_hook(nullptr);
}

TEST(HostAdamW, KeepsOptimizerStateAndGradientsOffTheDevice) {
  // gpt2-124m on sim: the device placement holds 12 more bytes per parameter (fp32
  // gradients, m and v) for the whole update; the host placement only the gradients still
  // being accumulated.
  auto peak = [](OptimizerPlacement where) {
    Rig s(make_backend(parse_device("sim:a100-40gb", "test")), 0, "lru");
    Gpt2Config c = gpt2_preset("gpt2-124m");
    c.batch = 1;
    c.seq = 128;
    s.model = make_gpt2(c, s.tape, 7);
    Trainer trainer(s.tape, *s.model, {.placement = where});
    std::size_t p = 0;
    for (int i = 0; i < 2; ++i) p = std::max(p, trainer.step().stats.peak_allocated);
    return std::pair{p, s.model->parameter_count()};
  };
  const auto [device, n] = peak(OptimizerPlacement::device);
  const auto [host, n2] = peak(OptimizerPlacement::host);
  ASSERT_EQ(n, n2);
  // The tied embedding's fp32 gradient (50257 x 768) is the only one alive for the whole
  // backward; the rest is a block's worth at a time.
  EXPECT_GE(device, host + 12 * n - 2 * 4 * 50257 * 768)
      << "device placement " << device << " B, host placement " << host << " B";
}

}  // namespace
}  // namespace memento::nn
