// Elementwise kernels: GELU, dropout and the residual add.
#include <cmath>
#include <cstddef>
#include <cstdint>

#include "nn/kernels/cpu/kernels_cpu.hpp"
#include "nn/kernels/cpu/parallel.hpp"
#include "nn/kernels/dropout_rng.hpp"

namespace memento::nn::cpu {

namespace {
// sqrt(2 / pi) and the cubic coefficient of GPT-2's tanh approximation.
constexpr double kGeluScale = 0.7978845608028654;
constexpr double kGeluCubic = 0.044715;
// Elements per parallel work item, and the rough cost of a tanh in multiply-adds.
constexpr std::size_t kBlock = 1 << 14;
constexpr double kTanhWork = 20;
}  // namespace

template <typename T>
void gelu_forward(T* out, const T* inp, std::size_t n) {
  const auto s = static_cast<T>(kGeluScale);
  const auto k = static_cast<T>(kGeluCubic);
  detail::parallel_for_blocks(n, kBlock, kTanhWork, [&](std::size_t begin, std::size_t end) {
    for (std::size_t i = begin; i < end; ++i) {
      const T x = inp[i];
      out[i] = T(0.5) * x * (T(1) + std::tanh(s * (x + k * x * x * x)));
    }
  });
}

template <typename T>
void gelu_backward(T* dinp, const T* inp, const T* dout, std::size_t n) {
  const auto s = static_cast<T>(kGeluScale);
  const auto k = static_cast<T>(kGeluCubic);
  detail::parallel_for_blocks(n, kBlock, kTanhWork, [&](std::size_t begin, std::size_t end) {
    for (std::size_t i = begin; i < end; ++i) {
      const T x = inp[i];
      const T th = std::tanh(s * (x + k * x * x * x));
      // sech^2 as 1 - tanh^2: cosh overflows for large |x| where this is simply 0.
      const T sech2 = T(1) - th * th;
      const T local = T(0.5) * (T(1) + th) + T(0.5) * x * sech2 * s * (T(1) + T(3) * k * x * x);
      dinp[i] += local * dout[i];
    }
  });
}

template <typename T>
void dropout_forward(T* out, const T* inp, std::size_t n, float p, std::uint64_t seed,
                     std::uint64_t offset) {
  // Dividing by (1 - p) in T, as the spec writes it, rather than multiplying by a rounded
  // reciprocal, so the CUDA kernel can match it bit for bit.
  const T keep_prob = T(1) - static_cast<T>(p);
  for (std::size_t i = 0; i < n; ++i) {
    out[i] = dropout_keep(seed, offset + i, p) ? inp[i] / keep_prob : T(0);
  }
}

template <typename T>
void dropout_backward(T* dinp, const T* dout, std::size_t n, float p, std::uint64_t seed,
                      std::uint64_t offset) {
  const T keep_prob = T(1) - static_cast<T>(p);
  for (std::size_t i = 0; i < n; ++i) {
    if (dropout_keep(seed, offset + i, p)) dinp[i] += dout[i] / keep_prob;
  }
}

template <typename T>
void residual_forward(T* out, const T* a, const T* b, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) out[i] = a[i] + b[i];
}

template <typename T>
void residual_backward(T* da, T* db, const T* dout, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) {
    da[i] += dout[i];
    db[i] += dout[i];
  }
}

#define MEMENTO_NN_INSTANTIATE(T)                                                    \
  template void gelu_forward<T>(T*, const T*, std::size_t);                          \
  template void gelu_backward<T>(T*, const T*, const T*, std::size_t);               \
  template void dropout_forward<T>(T*, const T*, std::size_t, float, std::uint64_t,  \
                                   std::uint64_t);                                   \
  template void dropout_backward<T>(T*, const T*, std::size_t, float, std::uint64_t, \
                                    std::uint64_t);                                  \
  template void residual_forward<T>(T*, const T*, const T*, std::size_t);            \
  template void residual_backward<T>(T*, T*, const T*, std::size_t);
MEMENTO_NN_INSTANTIATE(float)
MEMENTO_NN_INSTANTIATE(double)
#undef MEMENTO_NN_INSTANTIATE

}  // namespace memento::nn::cpu
