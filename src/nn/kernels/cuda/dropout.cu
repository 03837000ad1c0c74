// Dropout with a counter-based mask: keep(i) = dropout_keep(seed, offset + i, p), the same
// function the CPU kernels call, so the mask is recomputed (backward, recomputation) and never
// stored.
#include "nn/kernels/cuda/common.cuh"
#include "nn/kernels/dropout_rng.hpp"

namespace memento::nn::cuda {
namespace {

using detail::ld;
using detail::st;

// out[i] = keep(i) ? in[i] / keep_prob : 0, or with kAccumulate out[i] += that.
template <bool kAccumulate, typename S>
__global__ void dropout_kernel(S* out, const S* in, std::size_t n, float p, float keep_prob,
                               std::uint64_t seed, std::uint64_t offset) {
  for (std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    const float y = dropout_keep(seed, offset + i, p) ? ld(in[i]) / keep_prob : 0.0f;
    out[i] = st<S>(kAccumulate ? ld(out[i]) + y : y);
  }
}

void check_p(float p) {
  MEMENTO_EXPECTS(p >= 0.0f && p < 1.0f, "dropout: p must lie in [0, 1), got " + std::to_string(p));
}

}  // namespace

template <typename S>
void dropout_forward(S* out, const S* inp, std::size_t n, float p, std::uint64_t seed,
                     std::uint64_t offset, void* stream) {
  check_p(p);
  if (n == 0) return;
  dropout_kernel<false><<<detail::grid_for(n), detail::kBlockSize, 0, detail::as_stream(stream)>>>(
      out, inp, n, p, 1.0f - p, seed, offset);
  MEMENTO_CUDA_CHECK_LAUNCH();
}

template <typename S>
void dropout_backward(S* dinp, const S* dout, std::size_t n, float p, std::uint64_t seed,
                      std::uint64_t offset, void* stream) {
  check_p(p);
  if (n == 0) return;
  dropout_kernel<true><<<detail::grid_for(n), detail::kBlockSize, 0, detail::as_stream(stream)>>>(
      dinp, dout, n, p, 1.0f - p, seed, offset);
  MEMENTO_CUDA_CHECK_LAUNCH();
}

template void dropout_forward<float>(float*, const float*, std::size_t, float, std::uint64_t,
                                     std::uint64_t, void*);
template void dropout_forward<bf16>(bf16*, const bf16*, std::size_t, float, std::uint64_t,
                                    std::uint64_t, void*);
template void dropout_backward<float>(float*, const float*, std::size_t, float, std::uint64_t,
                                      std::uint64_t, void*);
template void dropout_backward<bf16>(bf16*, const bf16*, std::size_t, float, std::uint64_t,
                                     std::uint64_t, void*);

}  // namespace memento::nn::cuda
