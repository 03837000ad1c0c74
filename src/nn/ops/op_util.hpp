// Small helpers shared by the op implementations.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "memento/error.hpp"
#include "memento/kernel.hpp"
#include "memento/op.hpp"
#include "nn/nn_op.hpp"

#if MEMENTO_HAS_CUDA
#include "nn/kernels/cuda/blas_registry.hpp"
#include "nn/kernels/cuda/kernels_cuda.hpp"
#include "nn/kernels/cuda/scratch.hpp"
#endif

namespace memento::nn::detail {

template <typename T = float>
T* f(const Storage& s) {
  return static_cast<T*>(s.data);
}

inline const std::int32_t* idx(const Storage& s) {
  return static_cast<const std::int32_t*>(s.data);
}

inline std::vector<Storage> copy(std::span<const Storage> s) { return {s.begin(), s.end()}; }

inline double d(std::size_t n) { return static_cast<double>(n); }

/// A kernel: `host` runs on the host backend (fp32 only: with bf16 activations the host
/// implementation is an error); the sim backend only times `cost`. The cuda implementation
/// is added by set_cuda() (without it, launching on the cuda backend fails with a
/// BackendError naming the kernel).
template <typename Host>
Kernel kernel(std::string name, KernelCost cost, DType dtype, Host host) {
  Kernel k;
  k.name = std::move(name);
  k.cost = cost;
  if (dtype == DType::f32) {
    k.host = std::move(host);
  } else {
    k.host = [n = k.name] {
      MEMENTO_FAIL(LogicError,
                   n + ": bf16 activations run on the cuda and sim backends only; the CPU "
                       "kernels are fp32");
    };
  }
  return k;
}

#if MEMENTO_HAS_CUDA
/// The storage type S of a CUDA implementation, passed as a tag: `As<float>` for fp32,
/// `As<cuda::bf16>` for bf16.
template <typename S>
struct As {
  using type = S;
};

/// Sets `k.cuda` to call `cuda(As<S>{}, stream)` with S the storage type of `dtype` and
/// `stream` the cudaStream_t the cuda backend launches on. `cuda` is typically a generic
/// lambda `[...](auto as, void* stream) { using S = typename decltype(as)::type; ... }`.
template <typename Cuda>
void set_cuda(Kernel& k, DType dtype, Cuda cuda) {
  if (dtype == DType::f32) {
    k.cuda = [c = std::move(cuda)](void* stream) { c(As<float>{}, stream); };
  } else {
    k.cuda = [c = std::move(cuda)](void* stream) { c(As<cuda::bf16>{}, stream); };
  }
}

/// kernel() with a CUDA implementation too (see set_cuda()).
template <typename Host, typename Cuda>
Kernel kernel(std::string name, KernelCost cost, DType dtype, Host host, Cuda cuda) {
  Kernel k = kernel(std::move(name), cost, dtype, std::move(host));
  set_cuda(k, dtype, std::move(cuda));
  return k;
}
#endif

}  // namespace memento::nn::detail
