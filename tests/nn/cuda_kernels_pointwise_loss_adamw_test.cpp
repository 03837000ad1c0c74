// The CUDA pointwise kernels (dropout, residual), the cross-entropy loss and the AdamW step
// against host references (in double, or the same fp32 operations where the result must match
// bit for bit), forward and backward, and their determinism: every kernel runs twice on the same
// inputs and must give the same bits. Without a GPU every test here skips with the reason.
#include <gtest/gtest.h>

#if MEMENTO_HAS_CUDA

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include "nn/cuda_kernels_test_util.hpp"
#include "nn/kernels/dropout_rng.hpp"

namespace memento::nn::cuda::kernel_test {
namespace {

TYPED_TEST(CudaKernelsTest, DropoutMaskIsTheHostMask) {
  using S = TypeParam;
  constexpr std::size_t n = 5000;
  constexpr float p = 0.3f;
  constexpr std::uint64_t seed = 0x5EEDull, offset = 123456;
  auto& rng = this->rng_;
  auto inp = random_vector<S>(n, rng, 0.25f, 2.0f);  // nonzero: a zero output means dropped
  const auto dout = random_vector<S>(n, rng);
  const auto dinp0 = random_vector<S>(n, rng);
  DeviceBuffer<S> d_inp(inp), d_dout(dout);

  auto run = [&] {
    DeviceBuffer<S> out(n), dinp(dinp0);
    dropout_forward<S>(out.get(), d_inp.get(), n, p, seed, offset, this->stream());
    dropout_backward<S>(dinp.get(), d_dout.get(), n, p, seed, offset, this->stream());
    this->sync();
    return std::make_pair(out.download(), dinp.download());
  };
  const auto [out, dinp] = run();

  // The same fp32 operations as the kernel: the results must match bit for bit.
  const float keep_prob = 1.0f - p;
  std::vector<S> want_out(n), want_dinp(n);
  std::size_t dropped = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const bool keep = dropout_keep(seed, offset + i, p);
    dropped += keep ? 0 : 1;
    const float y = keep ? static_cast<float>(to_d(inp[i])) / keep_prob : 0.0f;
    want_out[i] = from_f<S>(y);
    const float dy = keep ? static_cast<float>(to_d(dout[i])) / keep_prob : 0.0f;
    want_dinp[i] = from_f<S>(static_cast<float>(to_d(dinp0[i])) + dy);
    EXPECT_EQ(to_d(out[i]) == 0.0, !keep) << "element " << i;
  }
  EXPECT_TRUE(same_bits(out, want_out));
  EXPECT_TRUE(same_bits(dinp, want_dinp));
  EXPECT_NEAR(static_cast<double>(dropped) / static_cast<double>(n), p, 0.05);

  const auto [out2, dinp2] = run();
  EXPECT_TRUE(same_bits(out, out2));
  EXPECT_TRUE(same_bits(dinp, dinp2));
}

TYPED_TEST(CudaKernelsTest, Residual) {
  using S = TypeParam;
  constexpr std::size_t n = 2049;
  auto& rng = this->rng_;
  const auto a = random_vector<S>(n, rng), b = random_vector<S>(n, rng);
  const auto dout = random_vector<S>(n, rng);
  const auto da0 = random_vector<S>(n, rng), db0 = random_vector<S>(n, rng);
  DeviceBuffer<S> d_a(a), d_b(b), d_dout(dout);

  auto run = [&] {
    DeviceBuffer<S> out(n), da(da0), db(db0);
    residual_forward<S>(out.get(), d_a.get(), d_b.get(), n, this->stream());
    residual_backward<S>(da.get(), db.get(), d_dout.get(), n, this->stream());
    this->sync();
    return std::vector<std::vector<S>>{out.download(), da.download(), db.download()};
  };
  const auto r = run();

  // One fp32 addition, rounded once: exact.
  std::vector<S> out(n), da(n), db(n);
  for (std::size_t i = 0; i < n; ++i) {
    const auto f = [](S x) { return static_cast<float>(to_d(x)); };
    out[i] = from_f<S>(f(a[i]) + f(b[i]));
    da[i] = from_f<S>(f(da0[i]) + f(dout[i]));
    db[i] = from_f<S>(f(db0[i]) + f(dout[i]));
  }
  EXPECT_TRUE(same_bits(r[0], out));
  EXPECT_TRUE(same_bits(r[1], da));
  EXPECT_TRUE(same_bits(r[2], db));
  const auto again = run();
  for (std::size_t i = 0; i < r.size(); ++i) EXPECT_TRUE(same_bits(r[i], again[i])) << i;
}

TYPED_TEST(CudaKernelsTest, CrossEntropy) {
  using S = TypeParam;
  const double tol = TestFixture::kTol;
  constexpr int N = 6, V = 1000;  // V > the 512 threads of a row block
  auto& rng = this->rng_;
  const auto logits = random_vector<S>(std::size_t{N} * V, rng, -4.0f, 4.0f);
  const auto targets = random_ints(N, V, rng);
  const auto dlosses = random_vector<float>(N, rng, 0.1f, 1.0f);
  const auto dlogits0 = random_vector<S>(std::size_t{N} * V, rng);
  DeviceBuffer<S> d_logits(logits);
  DeviceBuffer<std::int32_t> d_targets(targets);
  DeviceBuffer<float> d_dlosses(dlosses);

  struct Result {
    std::vector<S> probs, dlogits;
    std::vector<float> losses;
  };
  auto run = [&] {
    DeviceBuffer<S> probs(std::size_t{N} * V), dlogits(dlogits0);
    DeviceBuffer<float> losses(N);
    crossentropy_forward<S>(probs.get(), losses.get(), d_logits.get(), d_targets.get(), N, V,
                            this->stream());
    crossentropy_backward<S>(dlogits.get(), probs.get(), d_dlosses.get(), d_targets.get(), N, V,
                             this->stream());
    this->sync();
    return Result{probs.download(), dlogits.download(), losses.download()};
  };
  const Result r = run();

  const auto x = to_double(logits);
  std::vector<double> probs(x.size()), losses(N);
  auto dlogits = to_double(dlogits0);
  for (int n = 0; n < N; ++n) {
    double m = -INFINITY;
    for (int v = 0; v < V; ++v) m = std::max(m, x[n * V + v]);
    double sum = 0.0;
    for (int v = 0; v < V; ++v) sum += std::exp(x[n * V + v] - m);
    for (int v = 0; v < V; ++v) {
      probs[n * V + v] = std::exp(x[n * V + v] - m) / sum;
      dlogits[n * V + v] += (probs[n * V + v] - (v == targets[n] ? 1.0 : 0.0)) * dlosses[n];
    }
    losses[n] = -std::log(probs[n * V + targets[n]]);
  }
  expect_near(r.probs, probs, tol, tol * 1e-3, "probs");  // probabilities are ~1/V
  expect_near(r.losses, losses, tol, tol, "losses");
  expect_near(r.dlogits, dlogits, tol, tol, "dlogits");

  const Result again = run();
  EXPECT_TRUE(same_bits(r.probs, again.probs));
  EXPECT_TRUE(same_bits(r.losses, again.losses));
  EXPECT_TRUE(same_bits(r.dlogits, again.dlogits));
}

TYPED_TEST(CudaKernelsTest, AdamW) {
  using S = TypeParam;
  constexpr std::size_t n = 1001;
  constexpr float lr = 1e-2f, beta1 = 0.9f, beta2 = 0.95f, eps = 1e-8f, wd = 0.1f;
  auto& rng = this->rng_;
  const auto params0 = random_vector<float>(n, rng);
  const auto grads1 = random_vector<float>(n, rng), grads2 = random_vector<float>(n, rng);
  DeviceBuffer<float> d_grads1(grads1), d_grads2(grads2);

  struct Result {
    std::vector<float> params, m, v;
    std::vector<S> copy;
  };
  auto run = [&] {
    DeviceBuffer<float> params(params0), m(std::vector<float>(n, 0.0f)),
        v(std::vector<float>(n, 0.0f));
    DeviceBuffer<S> copy(n);
    adamw_step<S>(params.get(), nullptr, d_grads1.get(), m.get(), v.get(), n, lr, beta1, beta2, eps,
                  wd, 1, this->stream());
    adamw_step<S>(params.get(), copy.get(), d_grads2.get(), m.get(), v.get(), n, lr, beta1, beta2,
                  eps, wd, 2, this->stream());
    this->sync();
    return Result{params.download(), m.download(), v.download(), copy.download()};
  };
  const Result r = run();

  std::vector<double> params = to_double(params0), m(n, 0.0), v(n, 0.0);
  for (int t = 1; t <= 2; ++t) {
    const auto& g = t == 1 ? grads1 : grads2;
    for (std::size_t i = 0; i < n; ++i) {
      m[i] = beta1 * m[i] + (1.0 - beta1) * g[i];
      v[i] = beta2 * v[i] + (1.0 - beta2) * g[i] * g[i];
      const double m_hat = m[i] / (1.0 - std::pow(double{beta1}, t));
      const double v_hat = v[i] / (1.0 - std::pow(double{beta2}, t));
      params[i] -= lr * (m_hat / (std::sqrt(v_hat) + eps) + wd * params[i]);
    }
  }
  expect_near(r.params, params, 1e-4, 1e-5, "params");  // fp32 state whatever S is
  expect_near(r.m, m, 1e-4, 1e-6, "m");
  expect_near(r.v, v, 1e-4, 1e-7, "v");
  std::vector<S> copy(n);  // the S copy is the fp32 result rounded once
  for (std::size_t i = 0; i < n; ++i) copy[i] = from_f<S>(r.params[i]);
  EXPECT_TRUE(same_bits(r.copy, copy));

  const Result again = run();
  EXPECT_TRUE(same_bits(r.params, again.params));
  EXPECT_TRUE(same_bits(r.m, again.m));
  EXPECT_TRUE(same_bits(r.v, again.v));
  EXPECT_TRUE(same_bits(r.copy, again.copy));
}

}  // namespace
}  // namespace memento::nn::cuda::kernel_test

#endif  // MEMENTO_HAS_CUDA
