#include "nn/kernels/cuda/scratch.hpp"

#include <cuda_runtime_api.h>

#include <cstdint>

#include "common/cuda_try.hpp"

namespace memento::nn::cuda {

DeviceScratch::DeviceScratch(std::size_t bytes, void* stream) : stream_(stream) {
  const auto s = static_cast<cudaStream_t>(stream);
  // Over-allocate so the pointer handed out is kAlignment-aligned whatever the pool returns
  // (the pool's own alignment is not documented as 256 bytes).
  MEMENTO_CUDA_TRY(cudaMallocAsync(&raw_, (bytes == 0 ? 1 : bytes) + kAlignment, s));
  const auto p = reinterpret_cast<std::uintptr_t>(raw_);
  aligned_ = reinterpret_cast<void*>((p + kAlignment - 1) / kAlignment * kAlignment);
}

DeviceScratch::~DeviceScratch() {
  if (raw_ != nullptr)
    (void)MEMENTO_CUDA_LOG(cudaFreeAsync(raw_, static_cast<cudaStream_t>(stream_)));
}

}  // namespace memento::nn::cuda
