// GELU, tanh approximation (GPT-2): 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
#include "nn/kernels/cuda/common.cuh"

namespace memento::nn::cuda {
namespace {

using detail::ld;
using detail::st;

constexpr float kScale = 0.7978845608028654f;  // sqrt(2 / pi)
constexpr float kCube = 0.044715f;

template <typename S>
__global__ void gelu_forward_kernel(S* out, const S* inp, std::size_t n) {
  for (std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    const float x = ld(inp[i]);
    const float u = kScale * (x + kCube * x * x * x);
    out[i] = st<S>(0.5f * x * (1.0f + tanhf(u)));
  }
}

// gelu'(x) = 0.5 (1 + tanh u) + 0.5 x sech^2(u) sqrt(2/pi) (1 + 3 * 0.044715 x^2).
template <typename S>
__global__ void gelu_backward_kernel(S* dinp, const S* inp, const S* dout, std::size_t n) {
  for (std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    const float x = ld(inp[i]);
    const float u = kScale * (x + kCube * x * x * x);
    const float cosh_u = coshf(u);
    const float sech2 = 1.0f / (cosh_u * cosh_u);
    const float grad =
        0.5f * (1.0f + tanhf(u)) + 0.5f * x * sech2 * kScale * (1.0f + 3.0f * kCube * x * x);
    dinp[i] = st<S>(ld(dinp[i]) + ld(dout[i]) * grad);
  }
}

}  // namespace

template <typename S>
void gelu_forward(S* out, const S* inp, std::size_t n, void* stream) {
  if (n == 0) return;
  gelu_forward_kernel<<<detail::grid_for(n), detail::kBlockSize, 0, detail::as_stream(stream)>>>(
      out, inp, n);
  MEMENTO_CUDA_CHECK_LAUNCH();
}

template <typename S>
void gelu_backward(S* dinp, const S* inp, const S* dout, std::size_t n, void* stream) {
  if (n == 0) return;
  gelu_backward_kernel<<<detail::grid_for(n), detail::kBlockSize, 0, detail::as_stream(stream)>>>(
      dinp, inp, dout, n);
  MEMENTO_CUDA_CHECK_LAUNCH();
}

template void gelu_forward<float>(float*, const float*, std::size_t, void*);
template void gelu_forward<bf16>(bf16*, const bf16*, std::size_t, void*);
template void gelu_backward<float>(float*, const float*, const float*, std::size_t, void*);
template void gelu_backward<bf16>(bf16*, const bf16*, const bf16*, std::size_t, void*);

}  // namespace memento::nn::cuda
