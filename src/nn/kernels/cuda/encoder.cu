// Token + position embedding. The backward is deterministic without atomics: each thread owns
// one channel (of one bucket of the vocabulary) and walks the tokens in order.
#include "nn/kernels/cuda/common.cuh"

namespace memento::nn::cuda {
namespace {

using detail::ld;
using detail::st;

// Threads of the dwte kernel split the vocabulary into this many buckets (token % kBuckets),
// for parallelism beyond C threads. A (v, c) entry is owned by one thread whatever the bucket
// count, and it adds the contributions in token order: the bits do not depend on kBuckets.
constexpr int kBuckets = 32;
constexpr int kChannelsPerBlock = 128;

template <typename S>
__global__ void encoder_forward_kernel(S* out, const std::int32_t* tokens, const S* wte,
                                       const S* wpe, std::size_t total, int T, int C) {
  for (std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    const std::size_t n = i / C;
    const int c = static_cast<int>(i % C);
    const int t = static_cast<int>(n % T);
    const std::size_t token = static_cast<std::size_t>(tokens[n]);
    out[i] = st<S>(ld(wte[token * C + c]) + ld(wpe[static_cast<std::size_t>(t) * C + c]));
  }
}

// dwte[v, c] += dout[n, c] for every n with tokens[n] == v, in increasing n. Thread: channel c
// of bucket blockIdx.y; all threads of a warp share the bucket, so the branch is uniform.
template <typename S>
__global__ void encoder_backward_wte_kernel(float* dwte, const S* dout, const std::int32_t* tokens,
                                            int N, int C) {
  const int c = static_cast<int>(blockIdx.x) * kChannelsPerBlock + static_cast<int>(threadIdx.x);
  const int bucket = static_cast<int>(blockIdx.y);
  if (c >= C) return;
  for (int n = 0; n < N; ++n) {
    const int token = tokens[n];
    if (token % kBuckets != bucket) continue;
    dwte[static_cast<std::size_t>(token) * C + c] += ld(dout[static_cast<std::size_t>(n) * C + c]);
  }
}

// dwpe[t, c] += dout[b, t, c] for b = 0, 1, ... in order; one thread per (t, c).
template <typename S>
__global__ void encoder_backward_wpe_kernel(float* dwpe, const S* dout, int B, int T, int C) {
  const std::size_t tc = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x;
  const std::size_t TC = static_cast<std::size_t>(T) * C;
  if (tc >= TC) return;
  float acc = dwpe[tc];
  for (int b = 0; b < B; ++b) acc += ld(dout[b * TC + tc]);
  dwpe[tc] = acc;
}

}  // namespace

template <typename S>
void encoder_forward(S* out, const std::int32_t* tokens, const S* wte, const S* wpe, int B, int T,
                     int C, void* stream) {
  MEMENTO_EXPECTS(B >= 0 && T > 0 && C > 0, "encoder_forward: bad sizes");
  const std::size_t total = static_cast<std::size_t>(B) * T * C;
  if (total == 0) return;
  encoder_forward_kernel<<<detail::grid_for(total), detail::kBlockSize, 0,
                           detail::as_stream(stream)>>>(out, tokens, wte, wpe, total, T, C);
  MEMENTO_CUDA_CHECK_LAUNCH();
}

template <typename S>
void encoder_backward(float* dwte, float* dwpe, const S* dout, const std::int32_t* tokens, int B,
                      int T, int C, void* stream) {
  MEMENTO_EXPECTS(B >= 0 && T > 0 && C > 0, "encoder_backward: bad sizes");
  if (B == 0) return;
  const cudaStream_t s = detail::as_stream(stream);
  const dim3 wte_grid(detail::ceil_div(static_cast<std::size_t>(C), kChannelsPerBlock), kBuckets);
  encoder_backward_wte_kernel<<<wte_grid, kChannelsPerBlock, 0, s>>>(dwte, dout, tokens, B * T, C);
  MEMENTO_CUDA_CHECK_LAUNCH();
  const std::size_t TC = static_cast<std::size_t>(T) * C;
  encoder_backward_wpe_kernel<<<detail::ceil_div(TC, detail::kBlockSize), detail::kBlockSize, 0,
                                s>>>(dwpe, dout, B, T, C);
  MEMENTO_CUDA_CHECK_LAUNCH();
}

template void encoder_forward<float>(float*, const std::int32_t*, const float*, const float*, int,
                                     int, int, void*);
template void encoder_forward<bf16>(bf16*, const std::int32_t*, const bf16*, const bf16*, int, int,
                                    int, void*);
template void encoder_backward<float>(float*, float*, const float*, const std::int32_t*, int, int,
                                      int, void*);
template void encoder_backward<bf16>(float*, float*, const bf16*, const std::int32_t*, int, int,
                                     int, void*);

}  // namespace memento::nn::cuda
