// One cuBLAS handle (a Blas) per CUDA stream, for the nn ops' CUDA kernels. A Blas must only
// ever be used on the one stream it is bound to (that is what makes cuBLAS bit-wise
// reproducible, see kernels_cuda.hpp), so the ops look theirs up by the stream they are
// launched on. A plain C++ header: it compiles without the CUDA headers.
#pragma once

#include "nn/kernels/cuda/kernels_cuda.hpp"

namespace memento::nn::cuda {

/// The Blas bound to `stream` on the current device, created on first use (its 32 MiB
/// workspace comes from cudaMalloc, outside any caching allocator). Thread-safe: the lookup
/// is locked; the Blas itself is used by whoever launches on that stream, one thread at a
/// time, like the stream. It lives until reset_blas_registry() or release_blas() drops it;
/// at process exit the registry is deliberately leaked (the driver reclaims the handles:
/// destroying them after cudart has begun unloading would fail).
[[nodiscard]] Blas& blas_for(void* stream);

/// Destroys the Blas of `stream` on the current device, if any (for the owner of a stream it
/// is about to destroy). No work may be pending or launched any more on it through that Blas.
void release_blas(void* stream);

/// Destroys every Blas of the registry (cublasDestroy and cudaFree synchronise the device).
/// No thread may hold or use a reference from blas_for() across the call. Returns how many
/// were destroyed.
std::size_t reset_blas_registry();

}  // namespace memento::nn::cuda
