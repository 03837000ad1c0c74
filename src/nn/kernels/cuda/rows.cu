// Row slices: a copy of a block of rows (the forward of a slice or a concatenation) and the
// accumulation of a block's gradient into the matching rows of the whole tensor's.
#include "nn/kernels/cuda/common.cuh"

namespace memento::nn::cuda {
namespace {

using detail::ld;
using detail::st;

template <typename S>
__global__ void accumulate_kernel(S* dst, const S* src, std::size_t n) {
  for (std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::size_t>(gridDim.x) * blockDim.x)
    dst[i] = st<S>(ld(dst[i]) + ld(src[i]));
}

}  // namespace

template <typename S>
void copy(S* out, const S* in, std::size_t n, void* stream) {
  if (n == 0) return;
  MEMENTO_CUDA_TRY(
      cudaMemcpyAsync(out, in, n * sizeof(S), cudaMemcpyDeviceToDevice, detail::as_stream(stream)));
}

template <typename S>
void accumulate(S* dst, const S* src, std::size_t n, void* stream) {
  if (n == 0) return;
  accumulate_kernel<<<detail::grid_for(n), detail::kBlockSize, 0, detail::as_stream(stream)>>>(
      dst, src, n);
  MEMENTO_CUDA_CHECK_LAUNCH();
}

template void copy<float>(float*, const float*, std::size_t, void*);
template void copy<bf16>(bf16*, const bf16*, std::size_t, void*);
template void accumulate<float>(float*, const float*, std::size_t, void*);
template void accumulate<bf16>(bf16*, const bf16*, std::size_t, void*);

}  // namespace memento::nn::cuda
