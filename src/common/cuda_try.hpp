// Checking cudart return codes. MEMENTO_CUDA_TRY throws; MEMENTO_CUDA_LOG is for noexcept
// paths (frees, destructors) and only reports. Shared by everything in memento that calls
// cudart (the cuda backend, the nn layer's CUDA kernels); internal, not installed.
#pragma once

#include <cuda_runtime_api.h>

#include <string>

#include "common/log.hpp"
#include "memento/error.hpp"

namespace memento::cuda_detail {

inline std::string describe(const char* call, cudaError_t err) {
  return std::string(call) + " failed: " + cudaGetErrorName(err) + " (" + cudaGetErrorString(err) +
         ")";
}

[[noreturn]] inline void raise(const char* file, int line, const char* call, cudaError_t err) {
  // Clear the runtime's last-error slot: the error is reported here, and a stale one would
  // otherwise be blamed on the next unrelated check (PyTorch checks after every launch).
  // Sticky errors (a faulted context) stay; every later call reports them again anyway.
  (void)cudaGetLastError();
  ::memento::detail::raise<BackendError>(file, line, describe(call, err));
}

/// True on success; otherwise logs the failure and returns false. At process exit cudart may
/// already be unloaded: that is not worth a message, the driver reclaims everything.
inline bool check_noexcept(const char* file, int line, const char* call, cudaError_t err) noexcept {
  if (err == cudaSuccess) return true;
  (void)cudaGetLastError();
  if (err == cudaErrorCudartUnloading) return false;
  try {
    log::error(std::string(file) + ":" + std::to_string(line) + ": " + describe(call, err));
  } catch (...) {
    log::error(call);  // out of memory while formatting: say at least which call
  }
  return false;
}

}  // namespace memento::cuda_detail

/// Evaluates a cudart call; throws memento::BackendError naming file:line, the call and the
/// error when it does not return cudaSuccess.
#define MEMENTO_CUDA_TRY(call)                                                     \
  do {                                                                             \
    const cudaError_t memento_cuda_err_ = (call);                                  \
    if (memento_cuda_err_ != cudaSuccess) [[unlikely]]                             \
      ::memento::cuda_detail::raise(__FILE__, __LINE__, #call, memento_cuda_err_); \
  } while (0)

/// Evaluates a cudart call in a noexcept path: true on success, logs and false otherwise.
#define MEMENTO_CUDA_LOG(call) \
  ::memento::cuda_detail::check_noexcept(__FILE__, __LINE__, #call, (call))
