// A fixed-order sum for the row reductions of the pointwise kernels.
#pragma once

#include <cstddef>

namespace memento::nn::cpu::detail {

/// sum of f(i) for i in [0, n): eight interleaved partial sums (lane i % 8), then combined
/// pairwise. The order depends on n alone, so the bits are reproducible; the independent chains
/// let the adds overlap (and vectorise) where one running sum would wait out each add's latency.
template <typename T, typename F>
T fixed_order_sum(std::size_t n, F&& f) {
  T acc[8] = {};
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (std::size_t j = 0; j < 8; ++j) acc[j] += f(i + j);
  }
  for (; i < n; ++i) acc[i % 8] += f(i);
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

}  // namespace memento::nn::cpu::detail
