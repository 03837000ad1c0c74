// Small element-wise helpers of the nn layer outside the kernels specification: filling an
// fp32 buffer (the loss gradient's seed), widening bf16 to fp32 (AdamW's master weights) and
// rounding fp32 to bf16 (gradients crossing the link for the host AdamW).
#include "nn/kernels/cuda/common.cuh"

namespace memento::nn::cuda {
namespace {

using detail::ld;
using detail::st;

__global__ void fill_f32_kernel(float* out, std::size_t n, float value) {
  for (std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::size_t>(gridDim.x) * blockDim.x)
    out[i] = value;
}

__global__ void bf16_to_f32_kernel(float* out, const bf16* in, std::size_t n) {
  for (std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::size_t>(gridDim.x) * blockDim.x)
    out[i] = ld(in[i]);
}

__global__ void f32_to_bf16_kernel(bf16* out, const float* in, std::size_t n) {
  for (std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::size_t>(gridDim.x) * blockDim.x)
    out[i] = st<bf16>(in[i]);
}

}  // namespace

void fill_f32(float* out, std::size_t n, float value, void* stream) {
  if (n == 0) return;
  fill_f32_kernel<<<detail::grid_for(n), detail::kBlockSize, 0, detail::as_stream(stream)>>>(out, n,
                                                                                             value);
  MEMENTO_CUDA_CHECK_LAUNCH();
}

void bf16_to_f32(float* out, const bf16* in, std::size_t n, void* stream) {
  if (n == 0) return;
  bf16_to_f32_kernel<<<detail::grid_for(n), detail::kBlockSize, 0, detail::as_stream(stream)>>>(
      out, in, n);
  MEMENTO_CUDA_CHECK_LAUNCH();
}

void f32_to_bf16(bf16* out, const float* in, std::size_t n, void* stream) {
  if (n == 0) return;
  f32_to_bf16_kernel<<<detail::grid_for(n), detail::kBlockSize, 0, detail::as_stream(stream)>>>(
      out, in, n);
  MEMENTO_CUDA_CHECK_LAUNCH();
}

}  // namespace memento::nn::cuda
