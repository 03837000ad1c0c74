// Causal self-attention kernels.
//
// Per (batch, head) the products are GEMMs over strided views of qkv (two forward, four
// backward), computed over the full seq x seq square: the entries above the diagonal are zeroed
// (scores) or are zeros (probabilities), so they add exact zeros. That wastes half the
// multiply-adds of the causal triangle but runs at BLAS speed, which beats a triangular loop by
// far; each element is still one fixed-order dot product (see gemm.cpp on determinism). The
// (b, h) pairs write disjoint outputs and run in parallel.
#include <cmath>
#include <cstddef>

#include "nn/kernels/cpu/gemm.hpp"
#include "nn/kernels/cpu/kernels_cpu.hpp"
#include "nn/kernels/cpu/parallel.hpp"

namespace memento::nn::cpu {

using detail::parallel_for;

namespace {

// Where one (b, h) lives: q's first element in qkv (k follows at +C and v at +2C, rows 3C
// apart), the head's first element in out (rows C apart), and its seq x seq block in the
// attention matrices.
struct HeadOffsets {
  std::size_t qkv;
  std::size_t out;
  std::size_t att;
};

HeadOffsets head_offsets(int b, int h, int seq, int C, int NH) {
  const auto s = static_cast<std::size_t>(seq);
  const auto c = static_cast<std::size_t>(C);
  const auto hs = static_cast<std::size_t>(C / NH);
  const std::size_t bh = static_cast<std::size_t>(b) * static_cast<std::size_t>(NH) + h;
  return {static_cast<std::size_t>(b) * s * 3 * c + h * hs,
          static_cast<std::size_t>(b) * s * c + h * hs, bh * s * s};
}

}  // namespace

template <typename T>
void attention_forward(T* out, T* preatt, T* att, const T* qkv, int B, int seq, int C, int NH) {
  const int hs = C / NH;
  const T scale = T(1) / std::sqrt(static_cast<T>(hs));
  const auto s = static_cast<std::size_t>(seq);
  const double work = static_cast<double>(seq) * seq * hs;
  parallel_for(static_cast<std::size_t>(B) * NH, 2 * work, [&](std::size_t bh) {
    const int b = static_cast<int>(bh) / NH;
    const int h = static_cast<int>(bh) % NH;
    const HeadOffsets at = head_offsets(b, h, seq, C, NH);
    const T* q = qkv + at.qkv;
    const T* k = q + C;
    const T* v = q + 2 * C;
    T* pre = preatt + at.att;
    T* a = att + at.att;
    detail::gemm<T>(false, true, seq, seq, hs, scale, q, 3 * C, k, 3 * C, T(0), pre, seq);
    for (std::size_t t = 0; t < s; ++t) {
      T* pre_row = pre + t * s;
      T* a_row = a + t * s;
      // Subtract the row maximum so exp never overflows.
      T mx = pre_row[0];
      for (std::size_t t2 = 1; t2 <= t; ++t2) mx = pre_row[t2] > mx ? pre_row[t2] : mx;
      T sum = 0;
      for (std::size_t t2 = 0; t2 <= t; ++t2) {
        a_row[t2] = std::exp(pre_row[t2] - mx);
        sum += a_row[t2];
      }
      for (std::size_t t2 = 0; t2 <= t; ++t2) a_row[t2] /= sum;
      for (std::size_t t2 = t + 1; t2 < s; ++t2) {
        pre_row[t2] = T(0);
        a_row[t2] = T(0);
      }
    }
    detail::gemm<T>(false, false, seq, hs, seq, T(1), a, seq, v, 3 * C, T(0), out + at.out, C);
  });
}

template <typename T>
void attention_backward(T* dqkv, T* dpreatt, T* datt, const T* dout, const T* qkv, const T* att,
                        int B, int seq, int C, int NH) {
  const int hs = C / NH;
  const T scale = T(1) / std::sqrt(static_cast<T>(hs));
  const auto s = static_cast<std::size_t>(seq);
  const double work = static_cast<double>(seq) * seq * hs;
  parallel_for(static_cast<std::size_t>(B) * NH, 4 * work, [&](std::size_t bh) {
    const int b = static_cast<int>(bh) / NH;
    const int h = static_cast<int>(bh) % NH;
    const HeadOffsets at = head_offsets(b, h, seq, C, NH);
    const T* q = qkv + at.qkv;
    const T* k = q + C;
    const T* v = q + 2 * C;
    T* dq = dqkv + at.qkv;
    T* dk = dq + C;
    T* dv = dq + 2 * C;
    const T* d = dout + at.out;
    const T* a = att + at.att;
    T* da = datt + at.att;
    T* dpre = dpreatt + at.att;
    // out = att v: datt = dout v^T, dv += att^T dout.
    detail::gemm<T>(false, true, seq, seq, hs, T(1), d, C, v, 3 * C, T(0), da, seq);
    detail::gemm<T>(true, false, seq, hs, seq, T(1), a, seq, d, C, T(1), dv, 3 * C);
    // Softmax backward in the O(seq) form: dpre = att * (datt - <att, datt>), times the scale.
    for (std::size_t t = 0; t < s; ++t) {
      const T* a_row = a + t * s;
      const T* da_row = da + t * s;
      T* dpre_row = dpre + t * s;
      T dot = 0;
      for (std::size_t t2 = 0; t2 <= t; ++t2) dot += a_row[t2] * da_row[t2];
      for (std::size_t t2 = 0; t2 <= t; ++t2) {
        dpre_row[t2] = scale * a_row[t2] * (da_row[t2] - dot);
      }
      for (std::size_t t2 = t + 1; t2 < s; ++t2) dpre_row[t2] = T(0);
    }
    // pre = scale q k^T (scale already in dpre): dq += dpre k, dk += dpre^T q.
    detail::gemm<T>(false, false, seq, hs, seq, T(1), dpre, seq, k, 3 * C, T(1), dq, 3 * C);
    detail::gemm<T>(true, false, seq, hs, seq, T(1), dpre, seq, q, 3 * C, T(1), dk, 3 * C);
  });
}

void attention_values(float* out, const float* qkv, const float* att, int B, int seq, int C,
                      int NH) {
  const int hs = C / NH;
  const auto C3 = static_cast<std::size_t>(3 * C);
  for (int b = 0; b < B; ++b)
    for (int t = 0; t < seq; ++t)
      for (int h = 0; h < NH; ++h) {
        float* o = out + (static_cast<std::size_t>(b) * seq + t) * C + h * hs;
        const float* a = att + ((static_cast<std::size_t>(b) * NH + h) * seq + t) * seq;
        for (int i = 0; i < hs; ++i) o[i] = 0;
        for (int u = 0; u <= t; ++u) {
          const float* v = qkv + (static_cast<std::size_t>(b) * seq + u) * C3 + 2 * C + h * hs;
          for (int i = 0; i < hs; ++i) o[i] += a[u] * v[i];
        }
      }
}

#define MEMENTO_NN_INSTANTIATE(T)                                               \
  template void attention_forward<T>(T*, T*, T*, const T*, int, int, int, int); \
  template void attention_backward<T>(T*, T*, T*, const T*, const T*, const T*, int, int, int, int);
MEMENTO_NN_INSTANTIATE(float)
MEMENTO_NN_INSTANTIATE(double)
#undef MEMENTO_NN_INSTANTIATE

}  // namespace memento::nn::cpu
