// The nn ops on the cuda backend: every kernel of every op has a CUDA implementation, and
// gpt2-tiny trains on the GPU: its fp32 steps match the host backend's, its bf16 steps stay
// close to fp32, and its gradients are bit-identical between an unlimited run and a run at
// 40% of that peak under the recompute and offload policies. The tests that need a GPU skip
// without one; the others (kernel wiring, Blas-free bf16 upload) run anywhere CUDA is built.
#include <gtest/gtest.h>

#if MEMENTO_HAS_CUDA

#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "memento/backends.hpp"
#include "memento/pinned_host_pool.hpp"
#include "memento/runtime.hpp"
#include "nn/cuda_kernels_test_util.hpp"
#include "nn/kernels/cuda/blas_registry.hpp"
#include "nn/kernels/cuda/kernels_cuda.hpp"
#include "nn/models/gpt2.hpp"
#include "nn/nn_rig.hpp"
#include "nn/nn_test_util.hpp"
#include "nn/ops/ops.hpp"
#include "nn/train.hpp"
#include "policies/plan/mixed_plan.hpp"

namespace memento::nn {
namespace {

using plan::make_mixed_plan;
using plan::MixedSolution;
using plan::MixedState;

constexpr std::size_t MiB = std::size_t{1} << 20;

#define SKIP_WITHOUT_GPU()                                                  \
  do {                                                                      \
    if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device visible"; \
  } while (0)

using testing::gradients;
using testing::Rig;

std::unique_ptr<Backend> host() { return testing::host_backend(); }
std::unique_ptr<Backend> gpu() { return make_cuda_backend(0); }

Gpt2Config tiny(DType dtype) {
  Gpt2Config c = gpt2_preset("gpt2-tiny");
  c.dtype = dtype;
  return c;
}

/// The mean losses of `steps` training steps of gpt2-tiny (seed 11) on `backend`.
std::vector<double> losses(std::unique_ptr<Backend> backend, DType dtype, int steps) {
  Rig s(std::move(backend), 0, "lru");
  s.model = make_gpt2(tiny(dtype), s.tape, 11);
  Trainer trainer(s.tape, *s.model, {.lr = 1e-3f});
  std::vector<double> out;
  for (int i = 0; i < steps; ++i) out.push_back(trainer.step().loss);
  return out;
}

// ---- without a GPU --------------------------------------------------------------------
TEST(NnCudaOps, EveryKernelHasACudaImplementation) {
  const std::vector<Storage> in(3);
  const Storage out{};
  for (DType dt : {DType::f32, DType::bf16}) {
    SCOPED_TRACE(to_string(dt));
    const std::vector<OpPtr> ops = {
        make_linear(4, 8, 16, true, dt),
        make_linear(4, 8, 16, false, dt),
        make_encoder(2, 2, 8, 16, dt),
        make_layernorm(4, 8, dt),
        make_attention_probs(2, 2, 8, 2, dt),
        make_attention_values(2, 2, 8, 2, dt),
        make_fused_attention(2, 2, 8, 2, dt),
        make_gelu(32, dt),
        make_residual(32, dt),
        make_dropout(32, 0.1f, dt),
        make_crossentropy(4, 16, dt),
    };
    for (const OpPtr& op : ops) {
      SCOPED_TRACE(op->name());
      const Kernel fwd = op->make_kernel(in, out, {});
      EXPECT_TRUE(static_cast<bool>(fwd.cuda)) << fwd.name;
      EXPECT_TRUE(static_cast<bool>(fwd.host)) << fwd.name;
      if (op->name() == "attention probs") continue;  // its backward is attention values'
      const Kernel bwd = op->make_backward(in, out, {}, in, {});
      EXPECT_TRUE(static_cast<bool>(bwd.cuda)) << bwd.name;
    }
  }
  EXPECT_TRUE(static_cast<bool>(zero_kernel({}).cuda));
  EXPECT_TRUE(static_cast<bool>(fill_kernel({}, 1.0f).cuda));
}

TEST(NnCudaOps, Bf16ValuesAreRoundedOnTheHostBeforeTheWrite) {
  // The host backend holds bytes; only its kernels are fp32. A bf16 tensor gets 2 bytes a value.
  Rig s(host(), 0, "lru");
  const std::vector<float> values = {1.0f, -2.5f, 3.14159f, 1e-3f, 65504.0f, -0.0f};
  TensorId id = s.tape.input(values.size() * 2);
  write_values(s.tape, id, values, DType::bf16);
  std::vector<cuda::bf16> back(values.size());
  s.tape.read(id, back.data(), back.size() * 2);
  for (std::size_t i = 0; i < values.size(); ++i)
    EXPECT_EQ(back[i].bits, cuda::to_bf16(values[i]).bits) << values[i];
  s.tape.clear();
}

// ---- on the GPU -----------------------------------------------------------------------
TEST(NnCudaOps, BlasRegistryHasOneHandlePerStream) {
  SKIP_WITHOUT_GPU();
  auto backend = gpu();
  const Stream a = backend->create_stream();
  const Stream b = backend->create_stream();
  void* sa = backend->native_handle(a);
  void* sb = backend->native_handle(b);
  cuda::Blas& first = cuda::blas_for(sa);
  EXPECT_EQ(&first, &cuda::blas_for(sa));
  EXPECT_EQ(first.stream(), sa);
  EXPECT_NE(&first, &cuda::blas_for(sb));
  EXPECT_EQ(cuda::blas_for(sb).stream(), sb);
  cuda::release_blas(sa);
  cuda::release_blas(sb);
}

TEST(Gpt2Cuda, Fp32StepsMatchTheHostBackend) {
  SKIP_WITHOUT_GPU();
  // Step 1's loss checks the forward; step 2's the backward and the AdamW update as well.
  const std::vector<double> want = losses(host(), DType::f32, 2);
  const std::vector<double> got = losses(gpu(), DType::f32, 2);
  for (std::size_t i = 0; i < want.size(); ++i) {
    SCOPED_TRACE(i);
    ASSERT_TRUE(std::isfinite(got[i])) << got[i];
    EXPECT_NEAR(got[i], want[i], 1e-3 * std::abs(want[i])) << "host " << want[i];
  }
}

TEST(Gpt2Cuda, Bf16StepsStayCloseToFp32) {
  SKIP_WITHOUT_GPU();
  // Step 2 runs on parameters written back from the fp32 master weights by AdamW.
  const std::vector<double> fp32 = losses(gpu(), DType::f32, 2);
  const std::vector<double> bf16 = losses(gpu(), DType::bf16, 2);
  for (std::size_t i = 0; i < fp32.size(); ++i) {
    SCOPED_TRACE(i);
    ASSERT_TRUE(std::isfinite(bf16[i])) << bf16[i];
    EXPECT_NEAR(bf16[i], fp32[i], 0.05 * std::abs(fp32[i])) << "fp32 " << fp32[i];
  }
}

TEST(Gpt2Cuda, GradientsAreBitIdenticalUnderRecomputeAndOffloadAt40Percent) {
  SKIP_WITHOUT_GPU();
  for (DType dt : {DType::f32, DType::bf16}) {
    SCOPED_TRACE(to_string(dt));
    Rig base(gpu(), 0, "lru");
    base.model = make_gpt2(tiny(dt), base.tape, 7);
    Trainer t0(base.tape, *base.model);
    const StepReport unlimited = t0.step(/*update=*/false);
    const auto want = gradients(base);
    const std::size_t budget = unlimited.stats.peak_reserved * 2 / 5;
    for (const char* policy : {"recompute", "offload"}) {
      SCOPED_TRACE(policy);
      Rig s(gpu(), budget, policy);
      s.model = make_gpt2(tiny(dt), s.tape, 7);
      Trainer t(s.tape, *s.model);
      const StepReport r = t.step(/*update=*/false);
      EXPECT_EQ(r.loss, unlimited.loss);
      EXPECT_LE(r.stats.peak_reserved, budget);
      EXPECT_GT(r.stats.counters.discards + r.stats.counters.offloads, 0u) << "nothing evicted";
      EXPECT_TRUE(gradients(s) == want) << "gradients differ from the unlimited run";
    }
  }
}

TEST(Gpt2Cuda, AChunkedHeadMatchesTheHostAndRecomputesBitIdentically) {
  // The head in three uneven chunks (rows, concat_rows, per-chunk logits): the losses close
  // to the host's in fp32, and with the logits discarded (recomputed per chunk) the same
  // gradients as with them kept, in fp32 and bf16.
  SKIP_WITHOUT_GPU();
  auto losses = [](std::unique_ptr<Backend> backend, DType dt) {
    Rig s(std::move(backend), 0, "lru");
    Gpt2Config c = tiny(dt);
    c.head_chunks = 3;
    s.model = make_gpt2(c, s.tape, 7);
    Trainer t(s.tape, *s.model);
    return t.step(/*update=*/false).loss;
  };
  const double host = losses(testing::host_backend(), DType::f32);
  EXPECT_NEAR(losses(gpu(), DType::f32), host, 1e-4 * std::abs(host));
  for (DType dt : {DType::f32, DType::bf16}) {
    SCOPED_TRACE(to_string(dt));
    Gpt2Config c = tiny(dt);
    c.head_chunks = 3;
    std::vector<std::vector<unsigned char>> grads[2];
    for (bool discard : {false, true}) {
      MixedSolution keep_all;
      keep_all.blocks.assign(static_cast<std::size_t>(c.layers), MixedState::keep);
      keep_all.discard_logits = discard;
      const auto plan = make_mixed_plan(keep_all, "test");
      Rig s(gpu(), 0, "lru");
      s.model = make_gpt2(c, s.tape, 7);
      s.tape.set_plan(plan.get());
      Trainer t(s.tape, *s.model);
      const StepReport r = t.step(/*update=*/false);
      EXPECT_EQ(r.stats.counters.recomputes, discard ? 3u : 0u);
      grads[discard] = gradients(s);
      s.tape.set_plan(nullptr);
    }
    EXPECT_TRUE(grads[0] == grads[1]) << "recomputed logits changed the gradients";
  }
}

TEST(NnCudaOps, FusedAttentionInGroupsHasTheEagerPairsBits) {
  // Three sequences through the fused op one at a time (no scratch allowed beyond one
  // sequence's), two at a time (the last group shorter) and all at once, against the eager
  // pair: the same output and the same gradient accumulated into a prefilled dqkv.
  SKIP_WITHOUT_GPU();
  using cuda::kernel_test::check_cuda;
  using cuda::kernel_test::DeviceBuffer;
  constexpr int B = 3, T = 24, C = 32, NH = 4;
  const std::size_t nqkv = B * T * 3 * C, nout = B * T * C, nscores = B * NH * T * T;
  std::mt19937_64 rng(5);
  const auto qkv_h = testing::random_vector<float>(rng, nqkv, -2, 2);
  const auto dout_h = testing::random_vector<float>(rng, nout);
  const auto dqkv_h = testing::random_vector<float>(rng, nqkv);
  cudaStream_t stream = nullptr;
  TEST_CUDA(cudaStreamCreate(&stream));
  const std::size_t sequence = (4 * NH * T * T + T * C) * sizeof(float);
  auto run = [&](bool fused, std::size_t scratch) {
    DeviceBuffer<float> qkv(qkv_h), dout(dout_h), dqkv(dqkv_h), out(nout), att(nscores);
    const Storage sq{qkv.get(), nqkv * 4}, so{out.get(), nout * 4}, sa{att.get(), nscores * 4};
    const std::vector<Storage> din = {{dqkv.get(), nqkv * 4}, {}};
    if (fused) {
      const OpPtr op = make_fused_attention(B, T, C, NH, DType::f32, scratch);
      const std::vector<Storage> in = {sq};
      op->make_kernel(in, so, {}).cuda(stream);
      op->make_backward(in, so, {dout.get(), nout * 4}, din, {}).cuda(stream);
    } else {
      const std::vector<Storage> in = {sq}, in2 = {sq, sa};
      make_attention_probs(B, T, C, NH, DType::f32)->make_kernel(in, sa, {}).cuda(stream);
      const OpPtr values = make_attention_values(B, T, C, NH, DType::f32);
      values->make_kernel(in2, so, {}).cuda(stream);
      values->make_backward(in2, so, {dout.get(), nout * 4}, din, {}).cuda(stream);
    }
    TEST_CUDA(cudaStreamSynchronize(stream));
    return std::pair{out.download(), dqkv.download()};
  };
  const auto [out, dqkv] = run(false, 0);
  for (std::size_t scratch : {std::size_t{0}, 2 * sequence, 3 * sequence}) {
    SCOPED_TRACE(scratch);
    const auto [fout, fdqkv] = run(true, scratch);
    EXPECT_EQ(0, std::memcmp(fout.data(), out.data(), nout * sizeof(float)));
    EXPECT_EQ(0, std::memcmp(fdqkv.data(), dqkv.data(), nqkv * sizeof(float)));
  }
  cuda::release_blas(stream);
  TEST_CUDA(cudaStreamDestroy(stream));
}

TEST(Gpt2Cuda, FusedAttentionMatchesEagerAndRecomputesBitIdentically) {
  // The fused op runs the eager kernels with the scores in scratch: the same loss and gradients as
  // eager in fp32 and bf16, and with every block's attention output dropped and recomputed, the
  // same gradients again.
  SKIP_WITHOUT_GPU();
  for (DType dt : {DType::f32, DType::bf16}) {
    SCOPED_TRACE(to_string(dt));
    std::vector<std::vector<unsigned char>> grads[3];
    double loss[3] = {};
    for (int run = 0; run < 3; ++run) {
      Gpt2Config c = tiny(dt);
      c.attention = run == 0 ? Attention::eager : Attention::fused;
      MixedSolution drop_atty;
      drop_atty.blocks.assign(static_cast<std::size_t>(c.layers), MixedState::selective);
      drop_atty.selective_drops = {"atty"};
      const auto plan = make_mixed_plan(drop_atty, "test");
      Rig s(gpu(), 0, "lru");
      s.model = make_gpt2(c, s.tape, 7);
      if (run == 2) s.tape.set_plan(plan.get());
      Trainer t(s.tape, *s.model);
      const StepReport r = t.step(/*update=*/false);
      loss[run] = r.loss;
      if (run == 2) {
        EXPECT_GE(r.stats.counters.recomputes, static_cast<std::size_t>(c.layers));
      }
      grads[run] = gradients(s);
      s.tape.set_plan(nullptr);
    }
    EXPECT_EQ(loss[1], loss[0]);
    EXPECT_EQ(loss[2], loss[0]);
    EXPECT_TRUE(grads[1] == grads[0]) << "fused and eager gradients differ";
    EXPECT_TRUE(grads[2] == grads[0]) << "recomputed fused attention changed the gradients";
  }
}

}  // namespace
}  // namespace memento::nn

#else

TEST(NnCudaOps, NeedsTheCudaBackend) { GTEST_SKIP() << "memento was built without CUDA"; }

#endif
