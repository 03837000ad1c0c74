// Causal self-attention, unfused: scores and attention-weighted values through cuBLAS
// strided-batched GEMMs (one call per sequence of the batch, NH heads per call, reading q, k,
// v straight out of qkv with a leading dimension of 3C), and a softmax kernel.
//
// Per (b, h), with Q, K, V the [T, hs] row-major blocks of head h (row stride 3C):
//   preatt = scale Q K^T     out_h = att V         (scale = 1 / sqrt(hs))
//   datt = dout_h V^T        dV += att^T dout_h    dpreatt = softmax backward of datt
//   dQ += scale dpreatt K    dK += scale dpreatt^T Q
// In cuBLAS's column-major view a row-major [R, K] block with row stride ld is a K x R
// matrix with leading dimension ld; a row-major [T, T] matrix M is M^T with ld T.
#include <cmath>

#include "nn/kernels/cuda/common.cuh"

namespace memento::nn::cuda {
namespace {

using detail::kWarpSize;
using detail::ld;
using detail::st;

constexpr int kRowsPerBlock = 8;  // warps (one score row each) per block

// att[r, :] = softmax of preatt[r, 0..t] with t = r % T, zeros after. One warp per row.
template <typename S>
__global__ void softmax_forward_kernel(S* att, const S* preatt, int rows, int T) {
  const int r = static_cast<int>(blockIdx.x) * kRowsPerBlock + static_cast<int>(threadIdx.y);
  if (r >= rows) return;
  const int t = r % T;
  const int lane = static_cast<int>(threadIdx.x);
  const S* x = preatt + static_cast<std::size_t>(r) * T;
  float m = -INFINITY;
  for (int j = lane; j <= t; j += kWarpSize) m = fmaxf(m, ld(x[j]));
  m = detail::warp_max(m);
  float sum = 0.0f;
  for (int j = lane; j <= t; j += kWarpSize) sum += expf(ld(x[j]) - m);
  sum = detail::warp_sum(sum);
  S* y = att + static_cast<std::size_t>(r) * T;
  for (int j = lane; j < T; j += kWarpSize) y[j] = st<S>(j <= t ? expf(ld(x[j]) - m) / sum : 0.0f);
}

// dpreatt[r, j] = att[r, j] (datt[r, j] - sum_i att[r, i] datt[r, i]) on the causal prefix,
// 0 after. One warp per row.
template <typename S>
__global__ void softmax_backward_kernel(S* dpreatt, const S* datt, const S* att, int rows, int T) {
  const int r = static_cast<int>(blockIdx.x) * kRowsPerBlock + static_cast<int>(threadIdx.y);
  if (r >= rows) return;
  const int t = r % T;
  const int lane = static_cast<int>(threadIdx.x);
  const std::size_t row = static_cast<std::size_t>(r) * T;
  float dot = 0.0f;
  for (int j = lane; j <= t; j += kWarpSize) dot += ld(att[row + j]) * ld(datt[row + j]);
  dot = detail::warp_sum(dot);
  for (int j = lane; j < T; j += kWarpSize)
    dpreatt[row + j] = st<S>(j <= t ? ld(att[row + j]) * (ld(datt[row + j]) - dot) : 0.0f);
}

void check_sizes(const char* what, int B, int T, int C, int NH) {
  MEMENTO_EXPECTS(B >= 0 && T > 0 && C > 0 && NH > 0 && C % NH == 0,
                  std::string(what) + ": bad sizes (C must be a multiple of NH)");
}

unsigned row_blocks(int rows) {
  return detail::ceil_div(static_cast<std::size_t>(rows), kRowsPerBlock);
}

}  // namespace

template <typename S>
void attention_forward(Blas& blas, S* out, S* preatt, S* att, const S* qkv, int B, int T, int C,
                       int NH) {
  check_sizes("attention_forward", B, T, C, NH);
  if (B == 0) return;
  const int hs = C / NH;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hs));
  const std::size_t qkv_batch = static_cast<std::size_t>(T) * 3 * C;
  const std::size_t att_batch = static_cast<std::size_t>(NH) * T * T;
  const long long TT = static_cast<long long>(T) * T;
  for (int b = 0; b < B; ++b) {
    const S* q = qkv + b * qkv_batch;
    const S* k = q + C;
    // preatt^T (T x T, column t1 = query) = op_T(K) Q, per head.
    detail::gemm_strided_batched(blas, CUBLAS_OP_T, CUBLAS_OP_N, T, T, hs, scale, k, 3 * C, hs, q,
                                 3 * C, hs, 0.0f, preatt + b * att_batch, T, TT, NH);
  }
  const int rows = B * NH * T;
  const dim3 block(kWarpSize, kRowsPerBlock);
  softmax_forward_kernel<<<row_blocks(rows), block, 0, detail::as_stream(blas.stream())>>>(
      att, preatt, rows, T);
  MEMENTO_CUDA_CHECK_LAUNCH();
  for (int b = 0; b < B; ++b) {
    const S* v = qkv + b * qkv_batch + 2 * C;
    // out_h^T (hs x T) = V^T att^T, per head: every key position, att is 0 past the diagonal.
    detail::gemm_strided_batched(blas, CUBLAS_OP_N, CUBLAS_OP_N, hs, T, T, 1.0f, v, 3 * C, hs,
                                 att + b * att_batch, T, TT, 0.0f,
                                 out + static_cast<std::size_t>(b) * T * C, C, hs, NH);
  }
}

template <typename S>
void attention_backward(Blas& blas, S* dqkv, S* dpreatt, S* datt, const S* dout, const S* qkv,
                        const S* att, int B, int T, int C, int NH) {
  check_sizes("attention_backward", B, T, C, NH);
  if (B == 0) return;
  const int hs = C / NH;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hs));
  const std::size_t qkv_batch = static_cast<std::size_t>(T) * 3 * C;
  const std::size_t att_batch = static_cast<std::size_t>(NH) * T * T;
  const std::size_t out_batch = static_cast<std::size_t>(T) * C;
  const long long TT = static_cast<long long>(T) * T;
  for (int b = 0; b < B; ++b) {
    const S* v = qkv + b * qkv_batch + 2 * C;
    const S* dout_b = dout + b * out_batch;
    // datt^T (T x T, column t1) = op_T(V) dout_h^T.
    detail::gemm_strided_batched(blas, CUBLAS_OP_T, CUBLAS_OP_N, T, T, hs, 1.0f, v, 3 * C, hs,
                                 dout_b, C, hs, 0.0f, datt + b * att_batch, T, TT, NH);
    // dV^T (hs x T) += dout_h^T op_T(att^T).
    detail::gemm_strided_batched(blas, CUBLAS_OP_N, CUBLAS_OP_T, hs, T, T, 1.0f, dout_b, C, hs,
                                 att + b * att_batch, T, TT, 1.0f, dqkv + b * qkv_batch + 2 * C,
                                 3 * C, hs, NH);
  }
  const int rows = B * NH * T;
  const dim3 block(kWarpSize, kRowsPerBlock);
  softmax_backward_kernel<<<row_blocks(rows), block, 0, detail::as_stream(blas.stream())>>>(
      dpreatt, datt, att, rows, T);
  MEMENTO_CUDA_CHECK_LAUNCH();
  for (int b = 0; b < B; ++b) {
    const S* q = qkv + b * qkv_batch;
    const S* k = q + C;
    const S* dpre = dpreatt + b * att_batch;
    // dQ^T (hs x T) += scale K^T dpreatt^T.
    detail::gemm_strided_batched(blas, CUBLAS_OP_N, CUBLAS_OP_N, hs, T, T, scale, k, 3 * C, hs,
                                 dpre, T, TT, 1.0f, dqkv + b * qkv_batch, 3 * C, hs, NH);
    // dK^T (hs x T) += scale Q^T op_T(dpreatt^T).
    detail::gemm_strided_batched(blas, CUBLAS_OP_N, CUBLAS_OP_T, hs, T, T, scale, q, 3 * C, hs,
                                 dpre, T, TT, 1.0f, dqkv + b * qkv_batch + C, 3 * C, hs, NH);
  }
}

template void attention_forward<float>(Blas&, float*, float*, float*, const float*, int, int, int,
                                       int);
template void attention_forward<bf16>(Blas&, bf16*, bf16*, bf16*, const bf16*, int, int, int, int);
template void attention_backward<float>(Blas&, float*, float*, float*, const float*, const float*,
                                        const float*, int, int, int, int);
template void attention_backward<bf16>(Blas&, bf16*, bf16*, bf16*, const bf16*, const bf16*,
                                       const bf16*, int, int, int, int);

}  // namespace memento::nn::cuda
