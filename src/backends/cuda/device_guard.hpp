// DeviceGuard: the cuda backend's calls run with its device current.
#pragma once

#include <cuda_runtime_api.h>

#include <new>

#include "common/cuda_try.hpp"

namespace memento {

// Makes `device` current for one call and then restores the caller's device: cudart state is
// per thread, and PyTorch keeps its own notion of the current device in that same state.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device) : device_(device) {
    MEMENTO_CUDA_TRY(cudaGetDevice(&previous_));
    if (previous_ != device_) MEMENTO_CUDA_TRY(cudaSetDevice(device_));
  }
  DeviceGuard(int device, std::nothrow_t) noexcept : device_(device), previous_(device) {
    int current = device;
    if (!MEMENTO_CUDA_LOG(cudaGetDevice(&current)) || current == device_) return;
    if (MEMENTO_CUDA_LOG(cudaSetDevice(device_))) previous_ = current;
  }
  ~DeviceGuard() {
    if (previous_ != device_) (void)MEMENTO_CUDA_LOG(cudaSetDevice(previous_));
  }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int device_;
  int previous_ = 0;
};

}  // namespace memento
