// Layer normalisation kernels.
#include <cmath>
#include <cstddef>

#include "nn/kernels/cpu/kernels_cpu.hpp"
#include "nn/kernels/cpu/parallel.hpp"
#include "nn/kernels/cpu/reduce.hpp"

namespace memento::nn::cpu {

namespace {

constexpr double kLayernormEps = 1e-5;
// Rows per parallel work item; rows are independent, so this only sets the grain.
constexpr std::size_t kRowsPerItem = 32;

// Calls fn(row) for every row, blocks of rows in parallel.
template <typename F>
void for_each_row(int N, int C, double work_per_element, F&& fn) {
  detail::parallel_for_blocks(static_cast<std::size_t>(N), kRowsPerItem, C * work_per_element,
                              [&](std::size_t begin, std::size_t end) {
                                for (std::size_t n = begin; n < end; ++n) fn(n);
                              });
}

}  // namespace

template <typename T>
void layernorm_forward(T* out, T* mean, T* rstd, const T* inp, const T* weight, const T* bias,
                       int N, int C) {
  const auto c = static_cast<std::size_t>(C);
  const T inv_c = T(1) / static_cast<T>(C);
  for_each_row(N, C, 8, [&](std::size_t n) {
    const T* x = inp + n * c;
    T* o = out + n * c;
    const T m = detail::fixed_order_sum<T>(c, [&](std::size_t i) { return x[i]; }) * inv_c;
    // Two passes: the variance of the centred values, not E[x^2] - mean^2, which cancels
    // catastrophically when |mean| is large against the spread.
    const T var = detail::fixed_order_sum<T>(c,
                                             [&](std::size_t i) {
                                               const T d = x[i] - m;
                                               return d * d;
                                             }) *
                  inv_c;
    const T s = T(1) / std::sqrt(var + static_cast<T>(kLayernormEps));
    for (std::size_t i = 0; i < c; ++i) o[i] = (x[i] - m) * s * weight[i] + bias[i];
    mean[n] = m;
    rstd[n] = s;
  });
}

template <typename T>
void layernorm_backward(T* dinp, T* dweight, T* dbias, const T* dout, const T* inp, const T* weight,
                        const T* mean, const T* rstd, int N, int C) {
  const auto c = static_cast<std::size_t>(C);
  const T inv_c = T(1) / static_cast<T>(C);
  // dinp = rstd * (g - mean(g) - xhat * mean(g * xhat)) with g = weight * dout; rows in
  // parallel.
  for_each_row(N, C, 12, [&](std::size_t n) {
    const T* d = dout + n * c;
    const T* x = inp + n * c;
    T* dx = dinp + n * c;
    const T m = mean[n];
    const T s = rstd[n];
    const T g_mean =
        detail::fixed_order_sum<T>(c, [&](std::size_t i) { return weight[i] * d[i]; }) * inv_c;
    const T gx_mean = detail::fixed_order_sum<T>(
                          c, [&](std::size_t i) { return weight[i] * d[i] * ((x[i] - m) * s); }) *
                      inv_c;
    for (std::size_t i = 0; i < c; ++i) {
      const T xhat = (x[i] - m) * s;
      dx[i] += (weight[i] * d[i] - g_mean - xhat * gx_mean) * s;
    }
  });
  // dweight and dbias sum over rows: one thread, rows in order, so each column's sum has a
  // fixed order (the inner loop runs across columns and vectorises without reordering).
  for (std::size_t n = 0; n < static_cast<std::size_t>(N); ++n) {
    const T* d = dout + n * c;
    const T* x = inp + n * c;
    const T m = mean[n];
    const T s = rstd[n];
    for (std::size_t i = 0; i < c; ++i) {
      dbias[i] += d[i];
      dweight[i] += (x[i] - m) * s * d[i];
    }
  }
}

#define MEMENTO_NN_INSTANTIATE(T)                                                         \
  template void layernorm_forward<T>(T*, T*, T*, const T*, const T*, const T*, int, int); \
  template void layernorm_backward<T>(T*, T*, T*, const T*, const T*, const T*, const T*, \
                                      const T*, int, int);
MEMENTO_NN_INSTANTIATE(float)
MEMENTO_NN_INSTANTIATE(double)
#undef MEMENTO_NN_INSTANTIATE

}  // namespace memento::nn::cpu
