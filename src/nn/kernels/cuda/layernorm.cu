// Layer normalization over the last dimension, eps = 1e-5. One warp per row; the parameter
// gradients are column sums over the rows in a fixed order (no atomics).
#include "nn/kernels/cuda/common.cuh"

namespace memento::nn::cuda {
namespace {

using detail::kWarpSize;
using detail::ld;
using detail::st;

constexpr float kEps = 1e-5f;
constexpr int kRowsPerBlock = 8;  // warps per block of the row kernels

// Row `n` of the warp calling it, or -1 past the end.
__device__ inline int warp_row(int N) {
  const int row = static_cast<int>(blockIdx.x) * kRowsPerBlock + static_cast<int>(threadIdx.y);
  return row < N ? row : -1;
}

template <typename S>
__global__ void layernorm_forward_kernel(S* out, float* mean, float* rstd, const S* inp,
                                         const S* weight, const S* bias, int N, int C) {
  const int n = warp_row(N);
  if (n < 0) return;
  const int lane = static_cast<int>(threadIdx.x);
  const S* x = inp + static_cast<std::size_t>(n) * C;
  float sum = 0.0f;
  for (int c = lane; c < C; c += kWarpSize) sum += ld(x[c]);
  const float m = detail::warp_sum(sum) / static_cast<float>(C);
  float sq = 0.0f;
  for (int c = lane; c < C; c += kWarpSize) {
    const float d = ld(x[c]) - m;
    sq += d * d;
  }
  const float s = 1.0f / sqrtf(detail::warp_sum(sq) / static_cast<float>(C) + kEps);
  S* o = out + static_cast<std::size_t>(n) * C;
  for (int c = lane; c < C; c += kWarpSize)
    o[c] = st<S>((ld(x[c]) - m) * s * ld(weight[c]) + ld(bias[c]));
  if (lane == 0) {
    mean[n] = m;
    rstd[n] = s;
  }
}

// dinp for one row per warp:
//   dnorm = dout * weight; dinp += rstd * (dnorm - mean(dnorm) - norm * mean(dnorm * norm)).
template <typename S>
__global__ void layernorm_backward_inp_kernel(S* dinp, const S* dout, const S* inp, const S* weight,
                                              const float* mean, const float* rstd, int N, int C) {
  const int n = warp_row(N);
  if (n < 0) return;
  const int lane = static_cast<int>(threadIdx.x);
  const std::size_t row = static_cast<std::size_t>(n) * C;
  const float m = mean[n];
  const float s = rstd[n];
  float dnorm_sum = 0.0f;
  float dnorm_norm_sum = 0.0f;
  for (int c = lane; c < C; c += kWarpSize) {
    const float norm = (ld(inp[row + c]) - m) * s;
    const float dnorm = ld(dout[row + c]) * ld(weight[c]);
    dnorm_sum += dnorm;
    dnorm_norm_sum += dnorm * norm;
  }
  const float dnorm_mean = detail::warp_sum(dnorm_sum) / static_cast<float>(C);
  const float dnorm_norm_mean = detail::warp_sum(dnorm_norm_sum) / static_cast<float>(C);
  for (int c = lane; c < C; c += kWarpSize) {
    const float norm = (ld(inp[row + c]) - m) * s;
    const float dnorm = ld(dout[row + c]) * ld(weight[c]);
    const float g = (dnorm - dnorm_mean - norm * dnorm_norm_mean) * s;
    dinp[row + c] = st<S>(ld(dinp[row + c]) + g);
  }
}

// dbias[c] += sum_n dout[n, c]; dweight[c] += sum_n norm[n, c] * dout[n, c]. Blocks of 32 x 32
// threads over 32 columns: thread (x, y) sums rows y, y + 32, ... in order, then the 32
// partials of a column are added in y order.
template <typename S>
__global__ void layernorm_backward_params_kernel(float* dweight, float* dbias, const S* dout,
                                                 const S* inp, const float* mean, const float* rstd,
                                                 int N, int C) {
  __shared__ float tile[kWarpSize][kWarpSize + 1];
  const int c = static_cast<int>(blockIdx.x) * kWarpSize + static_cast<int>(threadIdx.x);
  float dw = 0.0f;
  float db = 0.0f;
  if (c < C) {
    for (int n = static_cast<int>(threadIdx.y); n < N; n += kWarpSize) {
      const std::size_t i = static_cast<std::size_t>(n) * C + c;
      const float d = ld(dout[i]);
      const float norm = (ld(inp[i]) - mean[n]) * rstd[n];
      db += d;
      dw += norm * d;
    }
  }
  const float dw_total = detail::column_total(dw, tile);
  __syncthreads();  // the tile is reused
  const float db_total = detail::column_total(db, tile);
  if (threadIdx.y == 0 && c < C) {
    dweight[c] += dw_total;
    dbias[c] += db_total;
  }
}

}  // namespace

template <typename S>
void layernorm_forward(S* out, float* mean, float* rstd, const S* inp, const S* weight,
                       const S* bias, int N, int C, void* stream) {
  MEMENTO_EXPECTS(N >= 0 && C > 0, "layernorm_forward: bad sizes");
  if (N == 0) return;
  const dim3 block(kWarpSize, kRowsPerBlock);
  layernorm_forward_kernel<<<detail::ceil_div(static_cast<std::size_t>(N), kRowsPerBlock), block, 0,
                             detail::as_stream(stream)>>>(out, mean, rstd, inp, weight, bias, N, C);
  MEMENTO_CUDA_CHECK_LAUNCH();
}

template <typename S>
void layernorm_backward(S* dinp, float* dweight, float* dbias, const S* dout, const S* inp,
                        const S* weight, const float* mean, const float* rstd, int N, int C,
                        void* stream) {
  MEMENTO_EXPECTS(N >= 0 && C > 0, "layernorm_backward: bad sizes");
  if (N == 0) return;
  const cudaStream_t s = detail::as_stream(stream);
  const dim3 row_block(kWarpSize, kRowsPerBlock);
  layernorm_backward_inp_kernel<<<detail::ceil_div(static_cast<std::size_t>(N), kRowsPerBlock),
                                  row_block, 0, s>>>(dinp, dout, inp, weight, mean, rstd, N, C);
  MEMENTO_CUDA_CHECK_LAUNCH();
  const dim3 col_block(kWarpSize, kWarpSize);
  layernorm_backward_params_kernel<<<detail::ceil_div(static_cast<std::size_t>(C), kWarpSize),
                                     col_block, 0, s>>>(dweight, dbias, dout, inp, mean, rstd, N,
                                                        C);
  MEMENTO_CUDA_CHECK_LAUNCH();
}

template void layernorm_forward<float>(float*, float*, float*, const float*, const float*,
                                       const float*, int, int, void*);
template void layernorm_forward<bf16>(bf16*, float*, float*, const bf16*, const bf16*, const bf16*,
                                      int, int, void*);
template void layernorm_backward<float>(float*, float*, float*, const float*, const float*,
                                        const float*, const float*, const float*, int, int, void*);
template void layernorm_backward<bf16>(bf16*, float*, float*, const bf16*, const bf16*, const bf16*,
                                       const float*, const float*, int, int, void*);

}  // namespace memento::nn::cuda
