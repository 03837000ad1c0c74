// The host AdamW overlapped with the backward: each parameter's CPU update runs (in stream
// order, behind its gradient's copy) while the backward computes earlier layers. The results
// do not depend on it or on the thread count; on sim the step gets shorter by the update
// time the backward hides. And bf16 gradients on the link: the update of the rounded
// gradient, exactly.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "memento/backends.hpp"
#include "memento/config.hpp"
#include "nn/kernels/cpu/kernels_cpu.hpp"
#include "nn/kernels/cuda/kernels_cuda.hpp"  // bf16 conversions: constexpr host code
#include "nn/models/gpt2.hpp"
#include "nn/nn_rig.hpp"
#include "nn/train.hpp"

namespace memento::nn {
namespace {

using testing::Rig;
using Bytes = std::vector<unsigned char>;

struct Trained {
  std::vector<double> losses;
  std::vector<Bytes> params;
};

std::vector<Bytes> read_params(Rig& s) {
  std::vector<Bytes> out;
  for (TensorId p : s.tape.parameters()) {
    out.emplace_back(s.tape.bytes(p));
    s.tape.read(p, out.back().data(), out.back().size());
  }
  return out;
}

Trained train_tiny(AdamWOptions o, int steps) {
  Rig s(testing::host_backend(), 0, "lru");
  s.model = make_gpt2(gpt2_preset("gpt2-tiny"), s.tape, 7);
  Trainer trainer(s.tape, *s.model, o);
  Trained out;
  for (int i = 0; i < steps; ++i) out.losses.push_back(trainer.step().loss);
  out.params = read_params(s);
  return out;
}

TEST(HostAdamWOverlap, SameBitsAsTheDevicePlacementWithAndWithoutOverlapAnyThreads) {
  const Trained device = train_tiny({.lr = 3e-3f, .placement = OptimizerPlacement::device}, 3);
  EXPECT_NE(device.losses.front(), device.losses.back()) << "the steps must change something";
  for (const bool overlap : {true, false}) {
    for (const int threads : {1, 3}) {
      SCOPED_TRACE(::testing::Message() << "overlap " << overlap << ", " << threads << " threads");
      const Trained host = train_tiny({.lr = 3e-3f,
                                       .placement = OptimizerPlacement::host,
                                       .host_threads = threads,
                                       .host_overlap = overlap},
                                      3);
      EXPECT_EQ(host.losses, device.losses);
      EXPECT_EQ(host.params, device.params);
    }
  }
}

TEST(HostAdamWOverlap, Bf16LinkUpdatesWithTheRoundedGradientExactly) {
  // The reference: the fp32 gradients of step 1 (device placement, not applied), rounded to
  // bf16 and widened, through the scalar AdamW from the initial parameters.
  Rig ref(testing::host_backend(), 0, "lru");
  ref.model = make_gpt2(gpt2_preset("gpt2-tiny"), ref.tape, 7);
  const std::vector<Bytes> initial = read_params(ref);
  Trainer ref_trainer(ref.tape, *ref.model, {.lr = 3e-3f});
  (void)ref_trainer.step(false);
  const std::vector<Bytes> grads = testing::gradients(ref);

  const AdamWOptions o{.lr = 3e-3f, .placement = OptimizerPlacement::host, .link_bf16 = true};
  Rig s(testing::host_backend(), 0, "lru");
  s.model = make_gpt2(gpt2_preset("gpt2-tiny"), s.tape, 7);
  Trainer trainer(s.tape, *s.model, o);
  (void)trainer.step();
  const std::vector<Bytes> updated = read_params(s);

  ASSERT_EQ(updated.size(), initial.size());
  std::size_t differs_from_fp32 = 0;
  for (std::size_t i = 0; i < initial.size(); ++i) {
    SCOPED_TRACE(::testing::Message() << "parameter " << i);
    const std::size_t n = initial[i].size() / sizeof(float);
    ASSERT_EQ(grads[i].size(), n * sizeof(float));
    std::vector<float> p(n), g(n), m(n, 0.0f), v(n, 0.0f);
    std::memcpy(p.data(), initial[i].data(), n * sizeof(float));
    std::memcpy(g.data(), grads[i].data(), n * sizeof(float));
    std::vector<float> p32 = p, m32 = m, v32 = v;
    cpu::adamw_update(p32.data(), g.data(), m32.data(), v32.data(), n, o.lr, o.beta1, o.beta2,
                      o.eps, o.weight_decay, 1);
    for (float& x : g) x = cuda::to_float(cuda::to_bf16(x));
    cpu::adamw_update(p.data(), g.data(), m.data(), v.data(), n, o.lr, o.beta1, o.beta2, o.eps,
                      o.weight_decay, 1);
    EXPECT_EQ(std::memcmp(p.data(), updated[i].data(), n * sizeof(float)), 0);
    differs_from_fp32 += std::memcmp(p32.data(), updated[i].data(), n * sizeof(float)) != 0;
  }
  EXPECT_GT(differs_from_fp32, 0u) << "bf16 gradients change the numerics";
}

TEST(HostAdamWOverlap, Bf16LinkTrainsLikeFp32) {
  const Trained fp32 = train_tiny({.lr = 3e-3f, .placement = OptimizerPlacement::host}, 4);
  const Trained bf16 =
      train_tiny({.lr = 3e-3f, .placement = OptimizerPlacement::host, .link_bf16 = true}, 4);
  ASSERT_EQ(fp32.losses.size(), bf16.losses.size());
  EXPECT_EQ(fp32.losses[0], bf16.losses[0]) << "the first forward precedes any update";
  for (std::size_t i = 1; i < fp32.losses.size(); ++i)
    EXPECT_NEAR(bf16.losses[i], fp32.losses[i], 1e-2 * std::abs(fp32.losses[i])) << "step " << i;
}

// gpt2-124m on sim: the modelled step (the second, after the first's downloads) and the
// modelled CPU update time of every parameter.
struct SimStep {
  double seconds = 0;
  double update_seconds = 0;
  double tail_seconds = 0;  // the update, d2h and h2d of the parameters handed over last
};

SimStep sim_step(AdamWOptions o, int batch) {
  Rig s(make_backend(parse_device("sim:a100-40gb", "test")), 0, "lru");
  Gpt2Config c = gpt2_preset("gpt2-124m");
  c.batch = batch;
  c.seq = 1024;
  c.dtype = DType::bf16;
  s.model = make_gpt2(c, s.tape, 7);
  o.placement = OptimizerPlacement::host;
  Trainer trainer(s.tape, *s.model, o);
  (void)trainer.step();
  SimStep r;
  r.seconds = trainer.step().stats.seconds;
  const DeviceInfo& info = s.backend->info();
  for (TensorId p : s.tape.parameters()) {
    const double n = static_cast<double>(s.tape.bytes(p)) / 2;  // bf16
    r.update_seconds += (4 * n + 24 * n + 2 * n) / o.host_update_bandwidth;
  }
  // The tied token embedding and the position embedding: their gradients are complete
  // only when the backward ends.
  for (const double n : {50257.0 * 768, 1024.0 * 768})
    r.tail_seconds +=
        30 * n / o.host_update_bandwidth + 4 * n / info.d2h_bandwidth + 2 * n / info.h2d_bandwidth;
  return r;
}

TEST(HostAdamWOverlap, OnSimTheBackwardHidesTheUpdate) {
  // Batch 32 (seed row 1's): the backward takes longer than the CPU steps.
  const SimStep overlapped = sim_step({}, 32);
  const SimStep after = sim_step({.host_overlap = false}, 32);
  const SimStep free_update = sim_step({.host_update_bandwidth = 1e18}, 32);
  const double exposed = overlapped.seconds - free_update.seconds;
  const double exposed_after = after.seconds - free_update.seconds;
  std::printf(
      "sim gpt2-124m b32 bf16: step %.1f ms overlapped, %.1f ms after the backward, "
      "%.1f ms with a free update; exposed update %.1f ms (%.1f%%) vs %.1f ms (%.1f%%); "
      "whole update %.1f ms\n",
      overlapped.seconds * 1e3, after.seconds * 1e3, free_update.seconds * 1e3, exposed * 1e3,
      100 * exposed / overlapped.seconds, exposed_after * 1e3, 100 * exposed_after / after.seconds,
      overlapped.update_seconds * 1e3);
  EXPECT_LT(overlapped.seconds, after.seconds);
  // After the backward, the update of the whole model shows; overlapped, at most that of the
  // parameters the backward finishes last (the embeddings) with their copies.
  EXPECT_GE(exposed_after, 0.9 * after.update_seconds);
  EXPECT_LE(exposed, overlapped.tail_seconds * 1.05);
}

}  // namespace
}  // namespace memento::nn
