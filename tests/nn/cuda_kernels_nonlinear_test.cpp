// The CUDA GELU and attention kernels against host references computed in double (written
// here, independent of the CPU kernels), forward and backward, and their determinism: every
// kernel runs twice on the same inputs and must give the same bits. Without a GPU every test here
// skips with the reason.
#include <gtest/gtest.h>

#if MEMENTO_HAS_CUDA

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include "nn/cuda_kernels_test_util.hpp"

namespace memento::nn::cuda::kernel_test {
namespace {

// ---- host references in double ----------------------------------------------------------
constexpr double kGeluScale = 0.7978845608028654;  // sqrt(2 / pi)

double gelu_ref(double x) {
  return 0.5 * x * (1.0 + std::tanh(kGeluScale * (x + 0.044715 * x * x * x)));
}
double gelu_grad_ref(double x) {
  const double u = kGeluScale * (x + 0.044715 * x * x * x);
  const double t = std::tanh(u);
  return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * kGeluScale * (1.0 + 3.0 * 0.044715 * x * x);
}

struct AttentionRef {
  std::vector<double> out, preatt, att;
};

// llm.c's attention on qkv[B,T,3C]: preatt only on the causal prefix (0 above).
AttentionRef attention_ref(const std::vector<double>& qkv, int B, int T, int C, int NH) {
  const int hs = C / NH;
  const double scale = 1.0 / std::sqrt(static_cast<double>(hs));
  AttentionRef r;
  r.out.assign(static_cast<std::size_t>(B) * T * C, 0.0);
  r.preatt.assign(static_cast<std::size_t>(B) * NH * T * T, 0.0);
  r.att.assign(r.preatt.size(), 0.0);
  for (int b = 0; b < B; ++b)
    for (int h = 0; h < NH; ++h)
      for (int t = 0; t < T; ++t) {
        const double* q = &qkv[(static_cast<std::size_t>(b) * T + t) * 3 * C + h * hs];
        const std::size_t row = ((static_cast<std::size_t>(b) * NH + h) * T + t) * T;
        double m = -INFINITY;
        for (int t2 = 0; t2 <= t; ++t2) {
          const double* k = &qkv[(static_cast<std::size_t>(b) * T + t2) * 3 * C + C + h * hs];
          double s = 0.0;
          for (int d = 0; d < hs; ++d) s += q[d] * k[d];
          r.preatt[row + t2] = s * scale;
          m = std::max(m, s * scale);
        }
        double sum = 0.0;
        for (int t2 = 0; t2 <= t; ++t2) sum += std::exp(r.preatt[row + t2] - m);
        for (int t2 = 0; t2 <= t; ++t2) r.att[row + t2] = std::exp(r.preatt[row + t2] - m) / sum;
        double* o = &r.out[(static_cast<std::size_t>(b) * T + t) * C + h * hs];
        for (int t2 = 0; t2 <= t; ++t2) {
          const double* v = &qkv[(static_cast<std::size_t>(b) * T + t2) * 3 * C + 2 * C + h * hs];
          for (int d = 0; d < hs; ++d) o[d] += r.att[row + t2] * v[d];
        }
      }
  return r;
}

// dqkv += the gradient of attention, from dout and the reference att.
void attention_backward_ref(std::vector<double>& dqkv, const std::vector<double>& dout,
                            const std::vector<double>& qkv, const std::vector<double>& att, int B,
                            int T, int C, int NH) {
  const int hs = C / NH;
  const double scale = 1.0 / std::sqrt(static_cast<double>(hs));
  std::vector<double> datt(static_cast<std::size_t>(T));
  for (int b = 0; b < B; ++b)
    for (int h = 0; h < NH; ++h)
      for (int t = 0; t < T; ++t) {
        const std::size_t row = ((static_cast<std::size_t>(b) * NH + h) * T + t) * T;
        const std::size_t qi = (static_cast<std::size_t>(b) * T + t) * 3 * C + h * hs;
        const double* dt = &dout[(static_cast<std::size_t>(b) * T + t) * C + h * hs];
        for (int t2 = 0; t2 <= t; ++t2) {
          const std::size_t vi = (static_cast<std::size_t>(b) * T + t2) * 3 * C + 2 * C + h * hs;
          double s = 0.0;
          for (int d = 0; d < hs; ++d) {
            s += qkv[vi + d] * dt[d];
            dqkv[vi + d] += att[row + t2] * dt[d];
          }
          datt[t2] = s;
        }
        double dot = 0.0;
        for (int t2 = 0; t2 <= t; ++t2) dot += att[row + t2] * datt[t2];
        for (int t2 = 0; t2 <= t; ++t2) {
          const double dpre = att[row + t2] * (datt[t2] - dot) * scale;
          const std::size_t ki = (static_cast<std::size_t>(b) * T + t2) * 3 * C + C + h * hs;
          for (int d = 0; d < hs; ++d) {
            dqkv[qi + d] += dpre * qkv[ki + d];
            dqkv[ki + d] += dpre * qkv[qi + d];
          }
        }
      }
}

TYPED_TEST(CudaKernelsTest, Gelu) {
  using S = TypeParam;
  const double tol = TestFixture::kTol;
  constexpr std::size_t n = 3001;
  auto& rng = this->rng_;
  const auto inp = random_vector<S>(n, rng, -5.0f, 5.0f);
  const auto dout = random_vector<S>(n, rng);
  const auto dinp0 = random_vector<S>(n, rng);
  DeviceBuffer<S> d_inp(inp), d_dout(dout);

  auto run = [&] {
    DeviceBuffer<S> out(n), dinp(dinp0);
    gelu_forward<S>(out.get(), d_inp.get(), n, this->stream());
    gelu_backward<S>(dinp.get(), d_inp.get(), d_dout.get(), n, this->stream());
    this->sync();
    return std::make_pair(out.download(), dinp.download());
  };
  const auto [out, dinp] = run();

  std::vector<double> want_out(n), want_dinp = to_double(dinp0);
  for (std::size_t i = 0; i < n; ++i) {
    want_out[i] = gelu_ref(to_d(inp[i]));
    want_dinp[i] += to_d(dout[i]) * gelu_grad_ref(to_d(inp[i]));
  }
  expect_near(out, want_out, tol, tol, "out");
  expect_near(dinp, want_dinp, tol, tol, "dinp");

  const auto [out2, dinp2] = run();
  EXPECT_TRUE(same_bits(out, out2));
  EXPECT_TRUE(same_bits(dinp, dinp2));
}

TYPED_TEST(CudaKernelsTest, Attention) {
  using S = TypeParam;
  const double tol = TestFixture::kTol;
  constexpr int B = 2, T = 37, C = 48, NH = 3;  // T > 32: the softmax rows loop over lanes
  const std::size_t TT = std::size_t{B} * NH * T * T;
  auto& rng = this->rng_;
  const auto qkv = random_vector<S>(std::size_t{B} * T * 3 * C, rng);
  const auto dout = random_vector<S>(std::size_t{B} * T * C, rng);
  const auto dqkv0 = random_vector<S>(qkv.size(), rng);
  DeviceBuffer<S> d_qkv(qkv), d_dout(dout);

  struct Result {
    std::vector<S> out, preatt, att, dqkv;
  };
  auto run = [&] {
    DeviceBuffer<S> out(std::size_t{B} * T * C), preatt(TT), att(TT), dqkv(dqkv0), dpreatt(TT),
        datt(TT);
    attention_forward<S>(*this->blas_, out.get(), preatt.get(), att.get(), d_qkv.get(), B, T, C,
                         NH);
    attention_backward<S>(*this->blas_, dqkv.get(), dpreatt.get(), datt.get(), d_dout.get(),
                          d_qkv.get(), att.get(), B, T, C, NH);
    this->sync();
    return Result{out.download(), preatt.download(), att.download(), dqkv.download()};
  };
  const Result r = run();

  const AttentionRef ref = attention_ref(to_double(qkv), B, T, C, NH);
  auto dqkv = to_double(dqkv0);
  attention_backward_ref(dqkv, to_double(dout), to_double(qkv), ref.att, B, T, C, NH);
  expect_near(r.out, ref.out, tol, tol, "out");
  expect_near(r.att, ref.att, tol, tol, "att");  // includes the exact zeros above the diagonal
  std::vector<S> preatt_causal = r.preatt;       // above the diagonal preatt is unspecified
  for (std::size_t i = 0; i < TT; ++i)
    if (static_cast<int>(i % T) > static_cast<int>((i / T) % T)) preatt_causal[i] = from_f<S>(0.0f);
  expect_near(preatt_causal, ref.preatt, tol, tol, "preatt");
  expect_near(r.dqkv, dqkv, tol, tol, "dqkv");

  const Result again = run();
  EXPECT_TRUE(same_bits(r.out, again.out));
  EXPECT_TRUE(same_bits(r.preatt, again.preatt));
  EXPECT_TRUE(same_bits(r.att, again.att));
  EXPECT_TRUE(same_bits(r.dqkv, again.dqkv));
}

}  // namespace
}  // namespace memento::nn::cuda::kernel_test

#endif  // MEMENTO_HAS_CUDA
