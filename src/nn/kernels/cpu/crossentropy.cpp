// Softmax cross-entropy kernels. Rows are independent: blocks of rows run in parallel, each
// row in a fixed order.
#include <cmath>
#include <cstddef>
#include <cstdint>

#include "nn/kernels/cpu/kernels_cpu.hpp"
#include "nn/kernels/cpu/parallel.hpp"

namespace memento::nn::cpu {

namespace {

constexpr std::size_t kRowsPerItem = 8;

template <typename T>
T softmax_loss_row(T* p, const T* x, std::size_t v, std::size_t target) {
  // Shifting by the row maximum keeps every exp in (0, 1]: no overflow for large logits.
  T mx = x[0];
  for (std::size_t i = 1; i < v; ++i) mx = x[i] > mx ? x[i] : mx;
  T sum = 0;
  for (std::size_t i = 0; i < v; ++i) {
    p[i] = std::exp(x[i] - mx);
    sum += p[i];
  }
  for (std::size_t i = 0; i < v; ++i) p[i] /= sum;
  // From the stored probs, so the loss and the gradient (probs - onehot) see the same values.
  return -std::log(p[target]);
}

}  // namespace

template <typename T>
void crossentropy_forward(T* probs, T* losses, const T* logits, const std::int32_t* targets, int N,
                          int V) {
  const auto v = static_cast<std::size_t>(V);
  auto rows = [&](std::size_t begin, std::size_t end) {
    for (std::size_t n = begin; n < end; ++n) {
      losses[n] =
          softmax_loss_row(probs + n * v, logits + n * v, v, static_cast<std::size_t>(targets[n]));
    }
  };
  detail::parallel_for_blocks(static_cast<std::size_t>(N), kRowsPerItem, 16.0 * V, rows);
}

template <typename T>
void crossentropy_backward(T* dlogits, const T* probs, const T* dlosses,
                           const std::int32_t* targets, int N, int V) {
  const auto v = static_cast<std::size_t>(V);
  auto rows = [&](std::size_t begin, std::size_t end) {
    for (std::size_t n = begin; n < end; ++n) {
      const T dl = dlosses[n];
      const auto target = static_cast<std::size_t>(targets[n]);
      const T* p = probs + n * v;
      T* d = dlogits + n * v;
      for (std::size_t i = 0; i < v; ++i) d[i] += (p[i] - (i == target ? T(1) : T(0))) * dl;
    }
  };
  detail::parallel_for_blocks(static_cast<std::size_t>(N), kRowsPerItem, 2.0 * V, rows);
}

#define MEMENTO_NN_INSTANTIATE(T)                                                         \
  template void crossentropy_forward<T>(T*, T*, const T*, const std::int32_t*, int, int); \
  template void crossentropy_backward<T>(T*, const T*, const T*, const std::int32_t*, int, int);
MEMENTO_NN_INSTANTIATE(float)
MEMENTO_NN_INSTANTIATE(double)
#undef MEMENTO_NN_INSTANTIATE

}  // namespace memento::nn::cpu
