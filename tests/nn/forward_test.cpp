// Forward kernels against straightforward reference formulas, plus the dropout mask and AdamW.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <numbers>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "nn/kernels/cpu/kernels_cpu.hpp"
#include "nn/kernels/dropout_rng.hpp"
#include "nn/nn_test_util.hpp"

namespace memento::nn::cpu {
namespace {

using testing::random_tokens;
using testing::random_vector;
using Vec = std::vector<double>;

std::size_t sz(int n) { return static_cast<std::size_t>(n); }

class ForwardTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    seed_ = testing::test_seed(std::hash<std::string>{}(info->name()) & 0xFFFFFFFFu);
    rng_.seed(seed_);
  }
  std::uint64_t seed_ = 0;
  std::mt19937_64 rng_;
};

// out[n][o] = sum_c inp[n][c] * weight[o][c] + bias[o], by the definition.
Vec reference_matmul(const Vec& inp, const Vec& weight, const double* bias, int N, int C, int OC) {
  Vec out(sz(N * OC));
  for (int n = 0; n < N; ++n) {
    for (int o = 0; o < OC; ++o) {
      double s = bias != nullptr ? bias[o] : 0.0;
      for (int c = 0; c < C; ++c) s += inp[sz(n * C + c)] * weight[sz(o * C + c)];
      out[sz(n * OC + o)] = s;
    }
  }
  return out;
}

TEST_F(ForwardTest, MatmulMatchesDefinition) {
  SCOPED_TRACE(testing::seed_trace(seed_));
  // Shapes that are not multiples of any micro-kernel tile, and one large enough to be blocked.
  for (auto [N, C, OC] : {std::tuple{7, 13, 5}, std::tuple{1, 3, 1}, std::tuple{70, 300, 90}}) {
    SCOPED_TRACE(fmt::format("N={} C={} OC={}", N, C, OC));
    const Vec inp = random_vector<double>(rng_, sz(N * C));
    const Vec weight = random_vector<double>(rng_, sz(OC * C));
    const Vec bias = random_vector<double>(rng_, sz(OC));
    for (const double* b : {bias.data(), static_cast<const double*>(nullptr)}) {
      Vec out(sz(N * OC));
      matmul_forward(out.data(), inp.data(), weight.data(), b, N, C, OC);
      const Vec ref = reference_matmul(inp, weight, b, N, C, OC);
      for (std::size_t i = 0; i < out.size(); ++i) EXPECT_NEAR(out[i], ref[i], 1e-12) << i;
    }
  }
}

TEST_F(ForwardTest, MatmulFloatAgreesWithDouble) {
  SCOPED_TRACE(testing::seed_trace(seed_));
  constexpr int N = 128, C = 256, OC = 96;
  const Vec inp = random_vector<double>(rng_, sz(N * C));
  const Vec weight = random_vector<double>(rng_, sz(OC * C));
  const Vec bias = random_vector<double>(rng_, sz(OC));
  // The double run takes the float-rounded inputs, so only the arithmetic differs.
  const std::vector<float> inp_f(inp.begin(), inp.end());
  const std::vector<float> weight_f(weight.begin(), weight.end());
  const std::vector<float> bias_f(bias.begin(), bias.end());
  const Vec inp_r(inp_f.begin(), inp_f.end()), weight_r(weight_f.begin(), weight_f.end()),
      bias_r(bias_f.begin(), bias_f.end());
  std::vector<float> out_f(sz(N * OC));
  Vec out_d(sz(N * OC));
  matmul_forward(out_f.data(), inp_f.data(), weight_f.data(), bias_f.data(), N, C, OC);
  matmul_forward(out_d.data(), inp_r.data(), weight_r.data(), bias_r.data(), N, C, OC);
  // A float dot product of C terms of size <= 1 errs by at most about C * 2^-24 * sum|terms|.
  for (std::size_t i = 0; i < out_d.size(); ++i) {
    EXPECT_NEAR(static_cast<double>(out_f[i]), out_d[i], 1e-4) << i;
  }
}

TEST_F(ForwardTest, EncoderAddsTokenAndPositionRows) {
  SCOPED_TRACE(testing::seed_trace(seed_));
  constexpr int B = 2, T = 3, C = 4, V = 5;
  const Vec wte = random_vector<double>(rng_, sz(V * C));
  const Vec wpe = random_vector<double>(rng_, sz(T * C));
  const auto tokens = random_tokens(rng_, sz(B * T), V);
  Vec out(sz(B * T * C));
  encoder_forward(out.data(), tokens.data(), wte.data(), wpe.data(), B, T, C);
  for (int b = 0; b < B; ++b)
    for (int t = 0; t < T; ++t)
      for (int c = 0; c < C; ++c)
        EXPECT_EQ(out[sz((b * T + t) * C + c)],
                  wte[sz(tokens[sz(b * T + t)] * C + c)] + wpe[sz(t * C + c)]);
}

TEST_F(ForwardTest, LayernormMatchesDefinition) {
  SCOPED_TRACE(testing::seed_trace(seed_));
  constexpr int N = 5, C = 32;
  const Vec inp = random_vector<double>(rng_, sz(N * C), -3.0, 3.0);
  const Vec weight = random_vector<double>(rng_, sz(C));
  const Vec bias = random_vector<double>(rng_, sz(C));
  Vec out(inp.size()), mean(sz(N)), rstd(sz(N));
  layernorm_forward(out.data(), mean.data(), rstd.data(), inp.data(), weight.data(), bias.data(), N,
                    C);
  for (int n = 0; n < N; ++n) {
    double m = 0, v = 0;
    for (int c = 0; c < C; ++c) m += inp[sz(n * C + c)] / C;
    for (int c = 0; c < C; ++c) v += (inp[sz(n * C + c)] - m) * (inp[sz(n * C + c)] - m) / C;
    EXPECT_NEAR(mean[sz(n)], m, 1e-14);
    EXPECT_NEAR(rstd[sz(n)], 1 / std::sqrt(v + 1e-5), 1e-12);
    for (int c = 0; c < C; ++c) {
      const double ref =
          (inp[sz(n * C + c)] - m) / std::sqrt(v + 1e-5) * weight[sz(c)] + bias[sz(c)];
      EXPECT_NEAR(out[sz(n * C + c)], ref, 1e-12);
    }
  }
}

// Rows far from zero (mean 1000, spread 1) in float: E[x^2] - mean^2 would lose about all of
// the variance's digits; the centred two-pass form keeps the output within float noise.
TEST_F(ForwardTest, LayernormFloatIsStableForLargeMeans) {
  SCOPED_TRACE(testing::seed_trace(seed_));
  constexpr int N = 4, C = 256;
  const Vec inp = random_vector<double>(rng_, sz(N * C), 999.0, 1001.0);
  const std::vector<float> inp_f(inp.begin(), inp.end());
  const Vec inp_r(inp_f.begin(), inp_f.end());
  const Vec weight(sz(C), 1.0), bias(sz(C), 0.0);
  const std::vector<float> weight_f(sz(C), 1.0f), bias_f(sz(C), 0.0f);
  Vec out(inp.size()), mean(sz(N)), rstd(sz(N));
  std::vector<float> out_f(inp.size()), mean_f(sz(N)), rstd_f(sz(N));
  layernorm_forward(out.data(), mean.data(), rstd.data(), inp_r.data(), weight.data(), bias.data(),
                    N, C);
  layernorm_forward(out_f.data(), mean_f.data(), rstd_f.data(), inp_f.data(), weight_f.data(),
                    bias_f.data(), N, C);
  for (std::size_t i = 0; i < out.size(); ++i) {
    EXPECT_NEAR(static_cast<double>(out_f[i]), out[i], 2e-3) << i;
  }
}

double gelu_double(double x) {
  return 0.5 * x * (1 + std::tanh(std::sqrt(2 / std::numbers::pi) * (x + 0.044715 * x * x * x)));
}

TEST_F(ForwardTest, GeluKnownValues) {
  const Vec inp = {0.0, 1.0, -1.0, 2.5, -3.0, 12.0, -12.0, 40.0, -40.0};
  Vec out(inp.size());
  gelu_forward(out.data(), inp.data(), inp.size());
  EXPECT_EQ(out[0], 0.0);
  EXPECT_NEAR(out[1], 0.8411919906082768, 1e-15);
  EXPECT_NEAR(out[2], -0.15880800939172324, 1e-15);
  EXPECT_NEAR(out[3], 2.484915733910001, 1e-15);
  EXPECT_NEAR(out[4], -0.0036373920817729943, 1e-15);
  EXPECT_NEAR(out[5], 12.0, 1e-12);
  EXPECT_NEAR(out[6], 0.0, 1e-12);
  for (std::size_t i = 0; i < inp.size(); ++i) EXPECT_NEAR(out[i], gelu_double(inp[i]), 1e-14);
  // The derivative is 1/2 at 0, tends to 1 and 0 in the tails, and never overflows.
  Vec dinp(inp.size(), 0.0);
  const Vec ones(inp.size(), 1.0);
  gelu_backward(dinp.data(), inp.data(), ones.data(), inp.size());
  EXPECT_EQ(dinp[0], 0.5);
  EXPECT_NEAR(dinp[7], 1.0, 1e-12);
  EXPECT_NEAR(dinp[8], 0.0, 1e-12);
  std::vector<float> big = {90.0f, -90.0f}, dbig(2, 0.0f), ones_f(2, 1.0f);
  gelu_backward(dbig.data(), big.data(), ones_f.data(), 2);
  EXPECT_TRUE(std::isfinite(dbig[0]) && std::isfinite(dbig[1]));
}

TEST_F(ForwardTest, AttentionIsCausalSoftmaxOfScaledScores) {
  SCOPED_TRACE(testing::seed_trace(seed_));
  constexpr int B = 2, T = 5, C = 12, NH = 3, hs = C / NH;
  const Vec qkv = random_vector<double>(rng_, sz(B * T * 3 * C), -2.0, 2.0);
  Vec out(sz(B * T * C)), preatt(sz(B * NH * T * T)), att(preatt.size());
  attention_forward(out.data(), preatt.data(), att.data(), qkv.data(), B, T, C, NH);
  const double scale = 1 / std::sqrt(static_cast<double>(hs));
  auto q = [&](int b, int t, int h, int i) { return qkv[sz((b * T + t) * 3 * C + h * hs + i)]; };
  auto k = [&](int b, int t, int h, int i) { return q(b, t, h, i + C); };
  auto v = [&](int b, int t, int h, int i) { return q(b, t, h, i + 2 * C); };
  for (int b = 0; b < B; ++b) {
    for (int h = 0; h < NH; ++h) {
      for (int t = 0; t < T; ++t) {
        const std::size_t row = sz(((b * NH + h) * T + t) * T);
        double sum = 0;
        for (int t2 = 0; t2 < T; ++t2) {
          if (t2 > t) {
            EXPECT_EQ(att[row + sz(t2)], 0.0) << "future position " << t2 << " of " << t;
            EXPECT_EQ(preatt[row + sz(t2)], 0.0);
            continue;
          }
          double dot = 0;
          for (int i = 0; i < hs; ++i) dot += q(b, t, h, i) * k(b, t2, h, i);
          EXPECT_NEAR(preatt[row + sz(t2)], dot * scale, 1e-13);
          EXPECT_GT(att[row + sz(t2)], 0.0);
          sum += att[row + sz(t2)];
        }
        EXPECT_NEAR(sum, 1.0, 1e-14);
        if (t == 0) {
          EXPECT_EQ(att[row], 1.0);
        }
        for (int i = 0; i < hs; ++i) {
          double ref = 0;
          for (int t2 = 0; t2 <= t; ++t2) ref += att[row + sz(t2)] * v(b, t2, h, i);
          EXPECT_NEAR(out[sz((b * T + t) * C + h * hs + i)], ref, 1e-13);
        }
      }
    }
  }
}

TEST_F(ForwardTest, AttentionSoftmaxIsStableForHugeScores) {
  SCOPED_TRACE(testing::seed_trace(seed_));
  constexpr int B = 1, T = 6, C = 8, NH = 2;
  const Vec qkv = random_vector<double>(rng_, sz(B * T * 3 * C), -30.0, 30.0);
  const std::vector<float> qkv_f(qkv.begin(), qkv.end());
  std::vector<float> out(sz(B * T * C)), preatt(sz(B * NH * T * T)), att(preatt.size());
  attention_forward(out.data(), preatt.data(), att.data(), qkv_f.data(), B, T, C, NH);
  for (float x : out) EXPECT_TRUE(std::isfinite(x));
  for (std::size_t r = 0; r < att.size(); r += T) {
    float sum = 0;
    for (std::size_t i = 0; i < sz(T); ++i) sum += att[r + i];
    EXPECT_NEAR(sum, 1.0f, 1e-5f);
  }
}

TEST_F(ForwardTest, CrossEntropyIsMinusLogSoftmax) {
  SCOPED_TRACE(testing::seed_trace(seed_));
  constexpr int N = 6, V = 11;
  const Vec logits = random_vector<double>(rng_, sz(N * V), -5.0, 5.0);
  const auto targets = random_tokens(rng_, sz(N), V);
  Vec probs(logits.size()), losses(sz(N));
  crossentropy_forward(probs.data(), losses.data(), logits.data(), targets.data(), N, V);
  for (int n = 0; n < N; ++n) {
    double lse = 0, sum = 0;
    for (int i = 0; i < V; ++i) lse += std::exp(logits[sz(n * V + i)]);
    lse = std::log(lse);
    for (int i = 0; i < V; ++i) {
      EXPECT_NEAR(probs[sz(n * V + i)], std::exp(logits[sz(n * V + i)] - lse), 1e-15);
      sum += probs[sz(n * V + i)];
    }
    EXPECT_NEAR(sum, 1.0, 1e-14);
    EXPECT_NEAR(losses[sz(n)], lse - logits[sz(n * V + targets[sz(n)])], 1e-13);
  }
}

TEST_F(ForwardTest, CrossEntropyHandlesHugeLogits) {
  // exp(1000) overflows any float type; shifted by the row max the probabilities are exact.
  const std::vector<float> logits = {1000.0f, 1001.0f, 999.0f};
  const std::int32_t target = 0;
  std::vector<float> probs(3), loss(1);
  crossentropy_forward(probs.data(), loss.data(), logits.data(), &target, 1, 3);
  const double lse = 1001.0 + std::log(std::exp(-1.0) + 1.0 + std::exp(-2.0));
  EXPECT_NEAR(loss[0], lse - 1000.0, 1e-5);
  EXPECT_NEAR(probs[1], std::exp(1001.0 - lse), 1e-6);
}

TEST_F(ForwardTest, DropoutKeepsAboutOneMinusPAndScales) {
  SCOPED_TRACE(testing::seed_trace(seed_));
  constexpr std::size_t n = 200000;
  constexpr float p = 0.25f;
  const std::vector<float> inp = random_vector<float>(rng_, n, 0.5, 1.5);  // no zeros
  std::vector<float> out(n);
  const std::uint64_t seed = rng_();
  dropout_forward(out.data(), inp.data(), n, p, seed, 0);
  std::size_t kept = 0;
  for (std::size_t i = 0; i < n; ++i) {
    if (out[i] != 0.0f) {
      ++kept;
      EXPECT_EQ(out[i], inp[i] / (1.0f - p)) << i;
    }
    ASSERT_EQ(out[i] != 0.0f, dropout_keep(seed, i, p)) << i;
  }
  // The kept fraction's standard deviation is sqrt(p (1-p) / n) ~ 0.001; allow 5 of them.
  EXPECT_NEAR(static_cast<double>(kept) / n, 1.0 - p, 0.005);
  // p = 0 keeps everything unchanged.
  dropout_forward(out.data(), inp.data(), n, 0.0f, seed, 0);
  EXPECT_EQ(out, inp);
}

std::vector<bool> dropout_mask(std::size_t n, float p, std::uint64_t seed, std::uint64_t offset) {
  const std::vector<double> ones(n, 1.0);
  std::vector<double> out(n);
  dropout_forward(out.data(), ones.data(), n, p, seed, offset);
  std::vector<bool> mask(n);
  for (std::size_t i = 0; i < n; ++i) mask[i] = out[i] != 0.0;
  return mask;
}

TEST_F(ForwardTest, DropoutMaskIsAFunctionOfSeedAndOffset) {
  constexpr std::size_t n = 4096;
  constexpr float p = 0.5f;
  const auto mask = dropout_mask(n, p, 42, 1000);
  EXPECT_EQ(dropout_mask(n, p, 42, 1000), mask) << "same (seed, offset) must redraw the mask";
  EXPECT_NE(dropout_mask(n, p, 42, 1001), mask);
  EXPECT_NE(dropout_mask(n, p, 42, 1000 + n), mask);
  EXPECT_NE(dropout_mask(n, p, 43, 1000), mask);
  // Element i of a call at offset o is element o + i of the stream: a tensor dropped in two
  // chunks draws the same mask as in one call.
  const auto head = dropout_mask(n / 2, p, 42, 1000);
  const auto tail = dropout_mask(n / 2, p, 42, 1000 + n / 2);
  EXPECT_TRUE(std::equal(head.begin(), head.end(), mask.begin()));
  EXPECT_TRUE(std::equal(tail.begin(), tail.end(), mask.begin() + n / 2));
  // The backward redraws the forward's mask.
  const std::vector<double> dout(n, 1.0);
  std::vector<double> dinp(n, 0.0);
  dropout_backward(dinp.data(), dout.data(), n, p, 42, 1000);
  std::size_t differ = 0;
  for (std::size_t i = 0; i < n; ++i) differ += (dinp[i] != 0.0) != mask[i];
  EXPECT_EQ(differ, 0u);
}

TEST_F(ForwardTest, ResidualAdds) {
  const std::vector<float> a = {1.0f, -2.0f, 0.5f}, b = {0.25f, 2.0f, 3.0f};
  std::vector<float> out(3);
  residual_forward(out.data(), a.data(), b.data(), 3);
  EXPECT_EQ(out, (std::vector<float>{1.25f, 0.0f, 3.5f}));
}

TEST_F(ForwardTest, AdamwOneStepMatchesHandComputation) {
  // m = 0.9*0.1 + 0.1*0.5 = 0.14; v = 0.999*0.01 + 0.001*0.25 = 0.01024;
  // m_hat = 0.14 / (1 - 0.9^3) = 0.516605166...; v_hat = 0.01024 / (1 - 0.999^3) = 3.41674894...;
  // p = 1 - 1e-3 * (m_hat / (sqrt(v_hat) + 1e-8) + 0.01 * 1) = 0.99971051905...
  double param = 1.0, m = 0.1, v = 0.01;
  const double grad = 0.5;
  adamw_update(&param, &grad, &m, &v, 1, 1e-3, 0.9, 0.999, 1e-8, 0.01, 3);
  EXPECT_NEAR(m, 0.14, 1e-16);
  EXPECT_NEAR(v, 0.01024, 1e-17);
  EXPECT_NEAR(param, 0.9997105190517751, 1e-15);
  float param_f = 1.0f, m_f = 0.1f, v_f = 0.01f;
  const float grad_f = 0.5f;
  adamw_update(&param_f, &grad_f, &m_f, &v_f, 1, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f, 3);
  EXPECT_NEAR(param_f, 0.9997105190517751, 1e-6);
}

TEST_F(ForwardTest, AdamwFirstStepMovesEachWeightByAboutLr) {
  // With zero moments, step 1's bias correction makes m_hat / sqrt(v_hat) = sign(grad).
  const Vec grads = {0.3, -2.0, 1e-3};
  Vec params = {1.0, 1.0, -1.0}, m(3, 0.0), v(3, 0.0);
  adamw_update(params.data(), grads.data(), m.data(), v.data(), 3, 0.01, 0.9, 0.999, 1e-8, 0.0, 1);
  EXPECT_NEAR(params[0], 0.99, 1e-9);
  EXPECT_NEAR(params[1], 1.01, 1e-9);
  EXPECT_NEAR(params[2], -1.01, 1e-6);
}

}  // namespace
}  // namespace memento::nn::cpu
