#include "nn/nn_op.hpp"

#include <algorithm>
#include <cstring>

#if MEMENTO_HAS_CUDA
#include <cuda_runtime_api.h>

#include "common/cuda_try.hpp"
#include "nn/kernels/cuda/kernels_cuda.hpp"
#endif

namespace memento::nn {

const char* to_string(DType d) noexcept { return d == DType::f32 ? "fp32" : "bf16"; }

Kernel zero_kernel(Storage s) {
  Kernel k;
  k.name = "zero";
  k.cost = {0, static_cast<double>(s.bytes), false};
  k.host = [s] { std::memset(s.data, 0, s.bytes); };
#if MEMENTO_HAS_CUDA
  k.cuda = [s](void* stream) {
    MEMENTO_CUDA_TRY(cudaMemsetAsync(s.data, 0, s.bytes, static_cast<cudaStream_t>(stream)));
  };
#endif
  return k;
}

Kernel fill_kernel(Storage s, float value) {
  Kernel k;
  k.name = "fill";
  k.cost = {0, static_cast<double>(s.bytes), false};
  k.host = [s, value] {
    auto* p = static_cast<float*>(s.data);
    std::fill(p, p + s.bytes / sizeof(float), value);
  };
#if MEMENTO_HAS_CUDA
  k.cuda = [s, value](void* stream) {
    cuda::fill_f32(static_cast<float*>(s.data), s.bytes / sizeof(float), value, stream);
  };
#endif
  return k;
}

}  // namespace memento::nn
