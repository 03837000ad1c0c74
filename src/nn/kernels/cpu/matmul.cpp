// matmul kernels (the products are bit-reproducible GEMMs, see gemm.cpp).
#include <cstddef>

#include "nn/kernels/cpu/gemm.hpp"
#include "nn/kernels/cpu/kernels_cpu.hpp"

namespace memento::nn::cpu {

template <typename T>
void matmul_forward(T* out, const T* inp, const T* weight, const T* bias, int N, int C, int OC) {
  detail::gemm<T>(false, true, N, OC, C, T(1), inp, C, weight, C, T(0), out, OC);
  if (bias == nullptr) return;
  // The bias goes onto the finished dot product, as in llm.c, not in as beta * c where OpenBLAS
  // would fold it into its K-blocked partial sums.
  for (int n = 0; n < N; ++n) {
    T* row = out + static_cast<std::size_t>(n) * static_cast<std::size_t>(OC);
    for (int o = 0; o < OC; ++o) row[o] += bias[o];
  }
}

template <typename T>
void matmul_backward(T* dinp, T* dweight, T* dbias, const T* dout, const T* inp, const T* weight,
                     int N, int C, int OC) {
  detail::gemm<T>(false, false, N, C, OC, T(1), dout, OC, weight, C, T(1), dinp, C);
  detail::gemm<T>(true, false, OC, C, N, T(1), dout, OC, inp, C, T(1), dweight, C);
  if (dbias == nullptr) return;
  // Rows in order: each dbias[o] is summed over n = 0..N-1 whatever the vector width.
  for (int n = 0; n < N; ++n) {
    const T* row = dout + static_cast<std::size_t>(n) * static_cast<std::size_t>(OC);
    for (int o = 0; o < OC; ++o) dbias[o] += row[o];
  }
}

#define MEMENTO_NN_INSTANTIATE(T)                                                   \
  template void matmul_forward<T>(T*, const T*, const T*, const T*, int, int, int); \
  template void matmul_backward<T>(T*, T*, T*, const T*, const T*, const T*, int, int, int);
MEMENTO_NN_INSTANTIATE(float)
MEMENTO_NN_INSTANTIATE(double)
#undef MEMENTO_NN_INSTANTIATE

}  // namespace memento::nn::cpu
