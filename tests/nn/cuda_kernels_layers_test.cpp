// The CUDA kernels of the layers with weights (matmul, encoder, layernorm) against small host
// references computed in double (written here, independent of the CPU kernels), forward and
// backward, and their determinism: every kernel runs twice on the same inputs and must give the
// same bits. Without a GPU every test here skips with the reason.
#include <gtest/gtest.h>

#if MEMENTO_HAS_CUDA

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "nn/cuda_kernels_test_util.hpp"

namespace memento::nn::cuda::kernel_test {
namespace {

TYPED_TEST(CudaKernelsTest, Matmul) {
  using S = TypeParam;
  const double tol = TestFixture::kTol;
  constexpr int N = 14, C = 40, OC = 24;
  auto& rng = this->rng_;
  const auto inp = random_vector<S>(std::size_t{N} * C, rng);
  const auto weight = random_vector<S>(std::size_t{OC} * C, rng);
  const auto bias = random_vector<S>(OC, rng);
  const auto dout = random_vector<S>(std::size_t{N} * OC, rng);
  const auto dinp0 = random_vector<S>(std::size_t{N} * C, rng);
  const auto dweight0 = random_vector<float>(std::size_t{OC} * C, rng);
  const auto dbias0 = random_vector<float>(OC, rng);
  DeviceBuffer<S> d_inp(inp), d_weight(weight), d_bias(bias), d_dout(dout);

  struct Result {
    std::vector<S> out, out_nobias, dinp;
    std::vector<float> dweight, dbias;
  };
  auto run = [&] {
    DeviceBuffer<S> out(std::size_t{N} * OC), out_nobias(std::size_t{N} * OC), dinp(dinp0);
    DeviceBuffer<float> dweight(dweight0), dbias(dbias0);
    matmul_forward<S>(*this->blas_, out.get(), d_inp.get(), d_weight.get(), d_bias.get(), N, C, OC);
    matmul_forward<S>(*this->blas_, out_nobias.get(), d_inp.get(), d_weight.get(), nullptr, N, C,
                      OC);
    matmul_backward<S>(*this->blas_, dinp.get(), dweight.get(), dbias.get(), d_dout.get(),
                       d_inp.get(), d_weight.get(), N, C, OC);
    this->sync();
    return Result{out.download(), out_nobias.download(), dinp.download(), dweight.download(),
                  dbias.download()};
  };
  const Result r = run();

  const auto x = to_double(inp), w = to_double(weight), bi = to_double(bias), g = to_double(dout);
  std::vector<double> out(std::size_t{N} * OC), out_nobias(out.size());
  auto dinp = to_double(dinp0), dweight = to_double(dweight0), dbias = to_double(dbias0);
  for (int n = 0; n < N; ++n)
    for (int o = 0; o < OC; ++o) {
      double s = 0.0;
      for (int c = 0; c < C; ++c) s += x[n * C + c] * w[o * C + c];
      out_nobias[n * OC + o] = s;
      out[n * OC + o] = s + bi[o];
      const double d = g[n * OC + o];
      dbias[o] += d;
      for (int c = 0; c < C; ++c) {
        dinp[n * C + c] += d * w[o * C + c];
        dweight[o * C + c] += d * x[n * C + c];
      }
    }
  expect_near(r.out, out, tol, tol, "out");
  expect_near(r.out_nobias, out_nobias, tol, tol, "out (no bias)");
  expect_near(r.dinp, dinp, tol, tol, "dinp");
  expect_near(r.dweight, dweight, tol, tol, "dweight");
  expect_near(r.dbias, dbias, tol, tol, "dbias");

  const Result again = run();
  EXPECT_TRUE(same_bits(r.out, again.out));
  EXPECT_TRUE(same_bits(r.out_nobias, again.out_nobias));
  EXPECT_TRUE(same_bits(r.dinp, again.dinp));
  EXPECT_TRUE(same_bits(r.dweight, again.dweight));
  EXPECT_TRUE(same_bits(r.dbias, again.dbias));
}

TYPED_TEST(CudaKernelsTest, Encoder) {
  using S = TypeParam;
  const double tol = TestFixture::kTol;
  constexpr int B = 3, T = 7, C = 40, V = 10;  // few tokens: many repeats in the scatter
  auto& rng = this->rng_;
  const auto tokens = random_ints(std::size_t{B} * T, V, rng);
  const auto wte = random_vector<S>(std::size_t{V} * C, rng);
  const auto wpe = random_vector<S>(std::size_t{T} * C, rng);
  const auto dout = random_vector<S>(std::size_t{B} * T * C, rng);
  const auto dwte0 = random_vector<float>(std::size_t{V} * C, rng);
  const auto dwpe0 = random_vector<float>(std::size_t{T} * C, rng);
  DeviceBuffer<std::int32_t> d_tokens(tokens);
  DeviceBuffer<S> d_wte(wte), d_wpe(wpe), d_dout(dout);

  struct Result {
    std::vector<S> out;
    std::vector<float> dwte, dwpe;
  };
  auto run = [&] {
    DeviceBuffer<S> out(std::size_t{B} * T * C);
    DeviceBuffer<float> dwte(dwte0), dwpe(dwpe0);
    encoder_forward<S>(out.get(), d_tokens.get(), d_wte.get(), d_wpe.get(), B, T, C,
                       this->stream());
    encoder_backward<S>(dwte.get(), dwpe.get(), d_dout.get(), d_tokens.get(), B, T, C,
                        this->stream());
    this->sync();
    return Result{out.download(), dwte.download(), dwpe.download()};
  };
  const Result r = run();

  const auto te = to_double(wte), pe = to_double(wpe), g = to_double(dout);
  std::vector<double> out(std::size_t{B} * T * C);
  auto dwte = to_double(dwte0), dwpe = to_double(dwpe0);
  for (int n = 0; n < B * T; ++n)
    for (int c = 0; c < C; ++c) {
      const int t = n % T;
      out[n * C + c] = te[tokens[n] * C + c] + pe[t * C + c];
      dwte[tokens[n] * C + c] += g[n * C + c];
      dwpe[t * C + c] += g[n * C + c];
    }
  expect_near(r.out, out, tol, tol, "out");
  expect_near(r.dwte, dwte, tol, tol, "dwte");
  expect_near(r.dwpe, dwpe, tol, tol, "dwpe");

  const Result again = run();
  EXPECT_TRUE(same_bits(r.out, again.out));
  EXPECT_TRUE(same_bits(r.dwte, again.dwte));
  EXPECT_TRUE(same_bits(r.dwpe, again.dwpe));
}

TYPED_TEST(CudaKernelsTest, LayerNorm) {
  using S = TypeParam;
  const double tol = TestFixture::kTol;
  constexpr int N = 14, C = 72;  // C not a multiple of the warp size
  auto& rng = this->rng_;
  const auto inp = random_vector<S>(std::size_t{N} * C, rng, -2.0f, 3.0f);
  const auto weight = random_vector<S>(C, rng, 0.5f, 1.5f);
  const auto bias = random_vector<S>(C, rng);
  const auto dout = random_vector<S>(std::size_t{N} * C, rng);
  const auto dinp0 = random_vector<S>(std::size_t{N} * C, rng);
  const auto dweight0 = random_vector<float>(C, rng);
  const auto dbias0 = random_vector<float>(C, rng);
  DeviceBuffer<S> d_inp(inp), d_weight(weight), d_bias(bias), d_dout(dout);

  struct Result {
    std::vector<S> out, dinp;
    std::vector<float> mean, rstd, dweight, dbias;
  };
  auto run = [&] {
    DeviceBuffer<S> out(std::size_t{N} * C), dinp(dinp0);
    DeviceBuffer<float> mean(N), rstd(N), dweight(dweight0), dbias(dbias0);
    layernorm_forward<S>(out.get(), mean.get(), rstd.get(), d_inp.get(), d_weight.get(),
                         d_bias.get(), N, C, this->stream());
    layernorm_backward<S>(dinp.get(), dweight.get(), dbias.get(), d_dout.get(), d_inp.get(),
                          d_weight.get(), mean.get(), rstd.get(), N, C, this->stream());
    this->sync();
    return Result{out.download(),  dinp.download(),    mean.download(),
                  rstd.download(), dweight.download(), dbias.download()};
  };
  const Result r = run();

  const auto x = to_double(inp), w = to_double(weight), bi = to_double(bias), g = to_double(dout);
  std::vector<double> out(std::size_t{N} * C), mean(N), rstd(N);
  auto dinp = to_double(dinp0), dweight = to_double(dweight0), dbias = to_double(dbias0);
  for (int n = 0; n < N; ++n) {
    const double* xn = &x[n * C];
    double m = 0.0;
    for (int c = 0; c < C; ++c) m += xn[c];
    m /= C;
    double var = 0.0;
    for (int c = 0; c < C; ++c) var += (xn[c] - m) * (xn[c] - m);
    const double s = 1.0 / std::sqrt(var / C + 1e-5);
    mean[n] = m;
    rstd[n] = s;
    double dnorm_mean = 0.0, dnorm_norm_mean = 0.0;
    for (int c = 0; c < C; ++c) {
      const double norm = (xn[c] - m) * s;
      out[n * C + c] = norm * w[c] + bi[c];
      const double dnorm = g[n * C + c] * w[c];
      dnorm_mean += dnorm / C;
      dnorm_norm_mean += dnorm * norm / C;
      dweight[c] += norm * g[n * C + c];
      dbias[c] += g[n * C + c];
    }
    for (int c = 0; c < C; ++c) {
      const double norm = (xn[c] - m) * s;
      dinp[n * C + c] += (g[n * C + c] * w[c] - dnorm_mean - norm * dnorm_norm_mean) * s;
    }
  }
  expect_near(r.out, out, tol, tol, "out");
  expect_near(r.mean, mean, 1e-4, 1e-4, "mean");
  expect_near(r.rstd, rstd, 1e-4, 1e-4, "rstd");
  expect_near(r.dinp, dinp, tol, tol, "dinp");
  expect_near(r.dweight, dweight, tol, tol, "dweight");
  expect_near(r.dbias, dbias, tol, tol, "dbias");

  const Result again = run();
  EXPECT_TRUE(same_bits(r.out, again.out));
  EXPECT_TRUE(same_bits(r.mean, again.mean));
  EXPECT_TRUE(same_bits(r.rstd, again.rstd));
  EXPECT_TRUE(same_bits(r.dinp, again.dinp));
  EXPECT_TRUE(same_bits(r.dweight, again.dweight));
  EXPECT_TRUE(same_bits(r.dbias, again.dbias));
}

}  // namespace
}  // namespace memento::nn::cuda::kernel_test

#endif  // MEMENTO_HAS_CUDA
