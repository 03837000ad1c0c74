// GPT-2's head in chunks of rows: the per-token losses are the same bits whatever the chunk
// count, training follows the unchunked model (only wte's gradient sums in another order), a
// plan that discards the logits chunks gives the same bits for less memory (each chunk is
// recomputed for its backward), and chain_shape() describes the head.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "memento/backends.hpp"
#include "memento/error.hpp"
#include "nn/models/gpt2.hpp"
#include "nn/nn_rig.hpp"
#include "nn/ops/ops.hpp"
#include "nn/train.hpp"

namespace memento::nn {
namespace {

using testing::Rig;

Gpt2Config tiny(int head_chunks) {
  Gpt2Config c = gpt2_preset("gpt2-tiny");
  c.head_chunks = head_chunks;
  return c;
}

/// The per-token losses of step 0's forward.
std::vector<float> first_losses(const Gpt2Config& c) {
  Rig s(testing::host_backend(), 0, "lru");
  s.model = make_gpt2(c, s.tape, 5);
  s.rt.begin_step();
  const TensorId losses = s.model->forward(s.tape, 0);
  std::vector<float> out(s.model->loss_count());
  s.tape.read(losses, out.data(), out.size() * sizeof(float));
  s.tape.clear();
  (void)s.rt.end_step();
  return out;
}

TEST(Gpt2HeadChunks, PerTokenLossesAreBitIdentical) {
  const std::vector<float> want = first_losses(tiny(1));
  // Chunks of 128 and 256 rows: the CPU GEMM computes 128-row blocks of the logits (gemm.cpp),
  // so each row's product runs through the same micro-kernels as unchunked: the same bits.
  for (int k : {4, 2}) {
    SCOPED_TRACE(k);
    const std::vector<float> got = first_losses(tiny(k));
    ASSERT_EQ(got.size(), want.size());
    EXPECT_EQ(0, std::memcmp(got.data(), want.data(), want.size() * sizeof(float)));
  }
  // Uneven chunks (171, 171, 170 rows) put some rows at other places in OpenBLAS's tiles,
  // whose edge micro-kernels round differently: a few losses differ in their last bit.
  const std::vector<float> got = first_losses(tiny(3));
  ASSERT_EQ(got.size(), want.size());
  for (std::size_t i = 0; i < got.size(); ++i)
    EXPECT_NEAR(got[i], want[i], 1e-6 * want[i]) << "token " << i;
}

/// The mean losses of 4 training steps (3 updates before the last).
std::vector<double> train(const Gpt2Config& c) {
  Rig s(testing::host_backend(), 0, "lru");
  s.model = make_gpt2(c, s.tape, 5);
  Trainer t(s.tape, *s.model, {.lr = 3e-3f});
  std::vector<double> out;
  for (int i = 0; i < 4; ++i) out.push_back(t.step().loss);
  return out;
}

TEST(Gpt2HeadChunks, TrainingMatchesTheUnchunkedHead) {
  const std::vector<double> want = train(tiny(1));
  for (int k : {4, 3}) {
    SCOPED_TRACE(k);
    const std::vector<double> got = train(tiny(k));
    if (k == 4) {
      EXPECT_EQ(got[0], want[0]) << "the first step's losses are the same bits";
    }
    // The updates differ only in summation order (wte's gradient, over the chunks; with 3
    // chunks the last bits of a few logits too).
    for (std::size_t i = 0; i < got.size(); ++i)
      EXPECT_NEAR(got[i], want[i], 1e-5 * want[i]) << "step " << i;
    EXPECT_LT(got.back(), got.front());
  }
}

/// Keeps everything, or discards the head's logits ({-1, "logits"}) as the forward leaves
/// them.
class LogitsPlan final : public Plan {
 public:
  explicit LogitsPlan(bool discard) : discard_(discard) {}
  std::string name() const override { return discard_ ? "discard-logits" : "keep"; }
  PlanAction at_release(const TensorTag& tag) const override {
    return discard_ && tag.block == -1 && tag.role == "logits" ? PlanAction::discard
                                                               : PlanAction::keep;
  }
  std::string describe() const override { return name(); }

 private:
  bool discard_;
};

struct PlanRun {
  StepReport report;
  std::vector<float> losses;
  std::vector<std::vector<unsigned char>> grads;
};

/// Two steps (no update) of `c` under `plan`: the second's report, per-token losses and
/// gradients. The first makes the parameters' gradient buffers, so the second's peak does not
/// depend on when the backward makes them.
PlanRun run_with(const Gpt2Config& c, const Plan& plan) {
  Rig s(testing::host_backend(), 0, "lru");
  s.model = make_gpt2(c, s.tape, 9);
  s.tape.set_plan(&plan);
  PlanRun r;
  for (std::uint64_t step = 0; step < 2; ++step) {
    s.rt.begin_step();
    s.tape.zero_grads();
    const TensorId losses = s.model->forward(s.tape, step);
    r.losses.resize(s.model->loss_count());
    s.tape.read(losses, r.losses.data(), r.losses.size() * sizeof(float));
    s.tape.backward(losses, 1.0f / static_cast<float>(r.losses.size()));
    s.tape.clear();
    r.report.stats = s.rt.end_step();
  }
  r.grads = testing::gradients(s);
  return r;
}

TEST(Gpt2HeadChunks, DiscardedLogitsAreRecomputedBitIdenticallyForLessMemory) {
  // A vocabulary large enough for the head to dominate: N = 8·64 = 512 rows of V = 8192
  // fp32 logits are 16 MiB in K = 4 chunks of 4 MiB; the blocks keep about 10 MiB.
  Gpt2Config c = tiny(4);
  c.vocab = 8192;
  const LogitsPlan keep(false), discard(true);
  const PlanRun base = run_with(c, keep);
  const PlanRun less = run_with(c, discard);
  EXPECT_EQ(0, std::memcmp(less.losses.data(), base.losses.data(), base.losses.size() * 4));
  EXPECT_TRUE(less.grads == base.grads) << "gradients differ when the logits are recomputed";
  EXPECT_EQ(base.report.stats.counters.recomputes, 0u);
  EXPECT_EQ(less.report.stats.counters.recomputes, 4u) << "each chunk once, for its backward";
  // With R the bytes both runs hold throughout the head's backward and L = 4 MiB a chunk's
  // logits: keeping them, the peak comes at the first cross-entropy backward (chunk K-1's),
  // R + K·L + L (that chunk's logits gradient). Discarding them, it comes at the second
  // (chunk K-2's): R + 2·L (its recomputed logits and their gradient) + G - g - l, with G the
  // gradient of the final norm's output (N·C fp32, made by chunk K-1's rows backward), g
  // chunk K-1's rows of that output and l its losses' gradient (both freed by then).
  const std::size_t N = 512, C = 64, K = 4, rows = N / K;
  const std::size_t L = rows * 8192 * 4, G = N * C * 4, g = rows * C * 4, l = rows * 4;
  EXPECT_EQ(base.report.stats.peak_allocated - less.report.stats.peak_allocated,
            (K - 1) * L - G + g + l);
}

TEST(Gpt2HeadChunks, ChainShapeDescribesTheHead) {
  Rig s(make_sim_backend(find_device_profile("h200")), 0, "lru");
  Gpt2Config c = gpt2_preset("gpt2-124m");
  c.batch = 32;
  c.dtype = DType::bf16;
  s.model = make_gpt2(c, s.tape, 1);
  const ChainShape shape = s.model->chain_shape();
  const double N = 32.0 * 1024, V = 50257, C = 768, s2 = 2;
  const double mib256 = 256.0 * 1024 * 1024;
  const int K = shape.head_chunks;
  EXPECT_EQ(K, gpt2_head_chunks(c));
  const double chunk_rows = std::ceil(N / K);
  // The fewest chunks of at most 256 MiB of logits each.
  EXPECT_LE(chunk_rows * V * s2, mib256);
  EXPECT_GT(std::ceil(N / (K - 1)) * V * s2, mib256);
  EXPECT_EQ(K, 13);
  EXPECT_EQ(shape.head_logits_bytes, N * V * s2);
  ASSERT_EQ(shape.head_recompute.size(), static_cast<std::size_t>(K));
  double flops = 0;
  for (const KernelCost& k : shape.head_recompute) flops += k.flops;
  EXPECT_DOUBLE_EQ(flops, 2 * N * C * V);
  // The parameters, the last block's output and the final norm, all logits, one chunk's
  // logits gradient, the fp32 losses and the int32 tokens and targets.
  const double params = static_cast<double>(s.model->parameter_count());
  const double btc = N * C;
  EXPECT_DOUBLE_EQ(shape.fixed_bytes,
                   s2 * params + s2 * 2 * btc + N * V * s2 + chunk_rows * V * s2 + 12 * N);

  // One chunk: the whole logits gradient, as before chunking.
  c.head_chunks = 1;
  Rig s1(make_sim_backend(find_device_profile("h200")), 0, "lru");
  s1.model = make_gpt2(c, s1.tape, 1);
  const ChainShape one = s1.model->chain_shape();
  EXPECT_EQ(one.head_chunks, 1);
  EXPECT_DOUBLE_EQ(one.fixed_bytes, s2 * params + s2 * (2 * btc + 2 * N * V) + 12 * N);
}

TEST(Gpt2HeadChunks, AutoChunksOfThePresets) {
  Gpt2Config xl = gpt2_preset("gpt2-1.5b");
  xl.batch = 16;
  xl.dtype = DType::bf16;
  EXPECT_EQ(gpt2_head_chunks(xl), 7);  // 16384 rows of 100514 bytes: 2670 rows fit 256 MiB
  Gpt2Config j = gpt2_preset("gpt-j-6b");
  j.batch = 8;
  j.dtype = DType::bf16;
  EXPECT_EQ(gpt2_head_chunks(j), 7);  // 16384 rows of 100800 bytes: 2663 rows fit
  EXPECT_EQ(gpt2_head_chunks(gpt2_preset("gpt2-tiny")), 1);
  Gpt2Config odd = tiny(300);  // 512 rows: chunks of 2 rows, so 256 chunks
  EXPECT_EQ(gpt2_head_chunks(odd), 256);
}

TEST(Gpt2HeadChunks, RejectsBadChunkCounts) {
  Rig s(testing::host_backend(), 0, "lru");
  for (int k : {-1, 513}) {
    try {
      (void)make_gpt2(tiny(k), s.tape, 1);
      FAIL() << "no error for " << k;
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find("head_chunks"), std::string::npos) << e.what();
    }
  }
  EXPECT_NO_THROW((void)make_gpt2(tiny(512), s.tape, 1));
}

}  // namespace
}  // namespace memento::nn
