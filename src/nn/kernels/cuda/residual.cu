// Residual connection: out = a + b; its backward passes dout to both inputs.
#include "nn/kernels/cuda/common.cuh"

namespace memento::nn::cuda {
namespace {

using detail::ld;
using detail::st;

template <typename S>
__global__ void residual_forward_kernel(S* out, const S* a, const S* b, std::size_t n) {
  for (std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::size_t>(gridDim.x) * blockDim.x)
    out[i] = st<S>(ld(a[i]) + ld(b[i]));
}

template <typename S>
__global__ void residual_backward_kernel(S* da, S* db, const S* dout, std::size_t n) {
  for (std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    const float d = ld(dout[i]);
    da[i] = st<S>(ld(da[i]) + d);
    db[i] = st<S>(ld(db[i]) + d);
  }
}

}  // namespace

template <typename S>
void residual_forward(S* out, const S* a, const S* b, std::size_t n, void* stream) {
  if (n == 0) return;
  residual_forward_kernel<<<detail::grid_for(n), detail::kBlockSize, 0,
                            detail::as_stream(stream)>>>(out, a, b, n);
  MEMENTO_CUDA_CHECK_LAUNCH();
}

template <typename S>
void residual_backward(S* da, S* db, const S* dout, std::size_t n, void* stream) {
  if (n == 0) return;
  residual_backward_kernel<<<detail::grid_for(n), detail::kBlockSize, 0,
                             detail::as_stream(stream)>>>(da, db, dout, n);
  MEMENTO_CUDA_CHECK_LAUNCH();
}

template void residual_forward<float>(float*, const float*, const float*, std::size_t, void*);
template void residual_forward<bf16>(bf16*, const bf16*, const bf16*, std::size_t, void*);
template void residual_backward<float>(float*, float*, const float*, std::size_t, void*);
template void residual_backward<bf16>(bf16*, bf16*, const bf16*, std::size_t, void*);

}  // namespace memento::nn::cuda
