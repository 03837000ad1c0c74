// Token + position embedding kernels.
#include <cstddef>
#include <cstdint>

#include "nn/kernels/cpu/kernels_cpu.hpp"

namespace memento::nn::cpu {

template <typename T>
void encoder_forward(T* out, const std::int32_t* tokens, const T* wte, const T* wpe, int B, int seq,
                     int C) {
  const auto c = static_cast<std::size_t>(C);
  for (int b = 0; b < B; ++b) {
    for (int t = 0; t < seq; ++t) {
      const std::size_t bt = static_cast<std::size_t>(b) * static_cast<std::size_t>(seq) + t;
      T* o = out + bt * c;
      const T* te = wte + static_cast<std::size_t>(tokens[bt]) * c;
      const T* pe = wpe + static_cast<std::size_t>(t) * c;
      for (std::size_t i = 0; i < c; ++i) o[i] = te[i] + pe[i];
    }
  }
}

template <typename T>
void encoder_backward(T* dwte, T* dwpe, const T* dout, const std::int32_t* tokens, int B, int seq,
                      int C) {
  // One pass in (b, t) order: a token that occurs several times gets its rows added in that
  // order, which a GPU kernel can reproduce by sorting occurrences instead of using atomics.
  const auto c = static_cast<std::size_t>(C);
  for (int b = 0; b < B; ++b) {
    for (int t = 0; t < seq; ++t) {
      const std::size_t bt = static_cast<std::size_t>(b) * static_cast<std::size_t>(seq) + t;
      const T* d = dout + bt * c;
      T* te = dwte + static_cast<std::size_t>(tokens[bt]) * c;
      T* pe = dwpe + static_cast<std::size_t>(t) * c;
      for (std::size_t i = 0; i < c; ++i) {
        te[i] += d[i];
        pe[i] += d[i];
      }
    }
  }
}

#define MEMENTO_NN_INSTANTIATE(T)                                                               \
  template void encoder_forward<T>(T*, const std::int32_t*, const T*, const T*, int, int, int); \
  template void encoder_backward<T>(T*, T*, const T*, const std::int32_t*, int, int, int);
MEMENTO_NN_INSTANTIATE(float)
MEMENTO_NN_INSTANTIATE(double)
#undef MEMENTO_NN_INSTANTIATE

}  // namespace memento::nn::cpu
