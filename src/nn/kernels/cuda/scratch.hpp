// Stream-ordered device scratch for the nn ops' CUDA kernels: what the CPU paths keep in a
// std::vector (row statistics, attention scores, probabilities) for the duration of one
// kernel. A plain C++ header: it compiles without the CUDA headers.
#pragma once

#include <cstddef>

namespace memento::nn::cuda {

/// `bytes` of device memory from cudaMallocAsync on `stream` (the device's default memory
/// pool, outside memento's caching allocator and its budget), 256-byte aligned like the
/// caching allocator's blocks so cuBLAS picks the same kernels for a scratch buffer and for a
/// tracked one. Freed with cudaFreeAsync on the same stream when it goes out of scope:
/// stream-ordered, so freeing right after the launches that use it is correct. Errors throw
/// memento::BackendError (MEMENTO_CUDA_TRY); the destructor only logs.
class DeviceScratch {
 public:
  static constexpr std::size_t kAlignment = 256;

  DeviceScratch(std::size_t bytes, void* stream);
  ~DeviceScratch();
  DeviceScratch(const DeviceScratch&) = delete;
  DeviceScratch& operator=(const DeviceScratch&) = delete;

  template <typename T>
  [[nodiscard]] T* as() const noexcept {
    return static_cast<T*>(aligned_);
  }

 private:
  void* raw_ = nullptr;
  void* aligned_ = nullptr;
  void* stream_ = nullptr;
};

/// Scratch of n elements of T.
template <typename T>
class ScratchArray {
 public:
  ScratchArray(std::size_t n, void* stream) : mem_(n * sizeof(T), stream) {}
  [[nodiscard]] T* get() const noexcept { return mem_.as<T>(); }

 private:
  DeviceScratch mem_;
};

}  // namespace memento::nn::cuda
