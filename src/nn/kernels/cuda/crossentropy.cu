// Softmax cross-entropy over the vocabulary: one block per row, block reductions in a fixed
// order.
#include "nn/kernels/cuda/common.cuh"

namespace memento::nn::cuda {
namespace {

using detail::ld;
using detail::st;

constexpr int kRowBlock = 512;  // threads per row of the forward kernel

// probs[n, :] = softmax(logits[n, :]); losses[n] = -log probs[n, target] = log(sum) - (x - max),
// from the fp32 values (NaN when the target is out of range).
template <typename S>
__global__ void crossentropy_forward_kernel(S* probs, float* losses, const S* logits,
                                            const std::int32_t* targets, int V) {
  const std::size_t row = static_cast<std::size_t>(blockIdx.x) * V;
  const S* x = logits + row;
  float m = -INFINITY;
  for (int v = static_cast<int>(threadIdx.x); v < V; v += static_cast<int>(blockDim.x))
    m = fmaxf(m, ld(x[v]));
  m = detail::block_max(m);
  float sum = 0.0f;
  for (int v = static_cast<int>(threadIdx.x); v < V; v += static_cast<int>(blockDim.x))
    sum += expf(ld(x[v]) - m);
  sum = detail::block_sum(sum);
  for (int v = static_cast<int>(threadIdx.x); v < V; v += static_cast<int>(blockDim.x))
    probs[row + v] = st<S>(expf(ld(x[v]) - m) / sum);
  if (threadIdx.x == 0) {
    const int target = targets[blockIdx.x];
    losses[blockIdx.x] = (target >= 0 && target < V) ? logf(sum) - (ld(x[target]) - m) : NAN;
  }
}

// dlogits[n, v] += (probs[n, v] - [v == targets[n]]) * dlosses[n].
template <typename S>
__global__ void crossentropy_backward_kernel(S* dlogits, const S* probs, const float* dlosses,
                                             const std::int32_t* targets, std::size_t total,
                                             int V) {
  for (std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    const std::size_t n = i / V;
    const int v = static_cast<int>(i % V);
    const float indicator = v == targets[n] ? 1.0f : 0.0f;
    dlogits[i] = st<S>(ld(dlogits[i]) + (ld(probs[i]) - indicator) * dlosses[n]);
  }
}

}  // namespace

template <typename S>
void crossentropy_forward(S* probs, float* losses, const S* logits, const std::int32_t* targets,
                          int N, int V, void* stream) {
  MEMENTO_EXPECTS(N >= 0 && V > 0, "crossentropy_forward: bad sizes");
  if (N == 0) return;
  crossentropy_forward_kernel<<<static_cast<unsigned>(N), kRowBlock, 0,
                                detail::as_stream(stream)>>>(probs, losses, logits, targets, V);
  MEMENTO_CUDA_CHECK_LAUNCH();
}

template <typename S>
void crossentropy_backward(S* dlogits, const S* probs, const float* dlosses,
                           const std::int32_t* targets, int N, int V, void* stream) {
  MEMENTO_EXPECTS(N >= 0 && V > 0, "crossentropy_backward: bad sizes");
  const std::size_t total = static_cast<std::size_t>(N) * V;
  if (total == 0) return;
  crossentropy_backward_kernel<<<detail::grid_for(total), detail::kBlockSize, 0,
                                 detail::as_stream(stream)>>>(dlogits, probs, dlosses, targets,
                                                              total, V);
  MEMENTO_CUDA_CHECK_LAUNCH();
}

template void crossentropy_forward<float>(float*, float*, const float*, const std::int32_t*, int,
                                          int, void*);
template void crossentropy_forward<bf16>(bf16*, float*, const bf16*, const std::int32_t*, int, int,
                                         void*);
template void crossentropy_backward<float>(float*, const float*, const float*, const std::int32_t*,
                                           int, int, void*);
template void crossentropy_backward<bf16>(bf16*, const bf16*, const float*, const std::int32_t*,
                                          int, int, void*);

}  // namespace memento::nn::cuda
