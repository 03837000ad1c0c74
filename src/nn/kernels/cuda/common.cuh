// Shared by the .cu files of the nn CUDA kernels: error checks, bf16 loads/stores, launch
// sizes, deterministic reductions and the cuBLAS GEMM wrappers. Not part of the public header.
#pragma once

#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "common/cuda_try.hpp"
#include "memento/error.hpp"
#include "nn/kernels/cuda/kernels_cuda.hpp"

namespace memento::nn::cuda::detail {

[[noreturn]] inline void raise_cublas(const char* file, int line, const char* call,
                                      cublasStatus_t status) {
  ::memento::detail::raise<BackendError>(file, line,
                                         std::string(call) +
                                             " failed: " + cublasGetStatusName(status) + " (" +
                                             cublasGetStatusString(status) + ")");
}

}  // namespace memento::nn::cuda::detail

/// Evaluates a cuBLAS call; throws memento::BackendError naming file:line, the call and the
/// status when it does not return CUBLAS_STATUS_SUCCESS (the cuBLAS twin of MEMENTO_CUDA_TRY).
#define MEMENTO_CUBLAS_TRY(call)                                           \
  do {                                                                     \
    const cublasStatus_t memento_cublas_status_ = (call);                  \
    if (memento_cublas_status_ != CUBLAS_STATUS_SUCCESS) [[unlikely]]      \
      ::memento::nn::cuda::detail::raise_cublas(__FILE__, __LINE__, #call, \
                                                memento_cublas_status_);   \
  } while (0)

/// After a kernel launch: throws memento::BackendError when the launch failed.
#define MEMENTO_CUDA_CHECK_LAUNCH() MEMENTO_CUDA_TRY(cudaGetLastError())

namespace memento::nn::cuda::detail {

constexpr int kWarpSize = 32;
constexpr int kBlockSize = 256;  // threads per block of the element-wise kernels

inline cudaStream_t as_stream(void* stream) { return static_cast<cudaStream_t>(stream); }

constexpr unsigned ceil_div(std::size_t a, std::size_t b) {
  return static_cast<unsigned>((a + b - 1) / b);
}

/// Blocks for a grid-stride loop over n elements (capped; the loop covers the rest).
inline unsigned grid_for(std::size_t n, int block = kBlockSize) {
  const std::size_t blocks = (n + static_cast<std::size_t>(block) - 1) / block;
  constexpr std::size_t kMaxBlocks = std::size_t{1} << 20;
  return static_cast<unsigned>(blocks == 0 ? 1 : (blocks < kMaxBlocks ? blocks : kMaxBlocks));
}

// ---- storage <-> fp32 -------------------------------------------------------------------
__device__ __forceinline__ float ld(float x) { return x; }
__device__ __forceinline__ float ld(bf16 x) {
  return __uint_as_float(static_cast<unsigned>(x.bits) << 16);  // exact
}

template <typename S>
__device__ __forceinline__ S st(float x);
template <>
__device__ __forceinline__ float st<float>(float x) {
  return x;
}
template <>
__device__ __forceinline__ bf16 st<bf16>(float x) {
  bf16 r;
  r.bits = __bfloat16_as_ushort(__float2bfloat16_rn(x));  // round to nearest even
  return r;
}

/// The cuBLAS data type of a storage type.
template <typename S>
constexpr cudaDataType_t cuda_type();
template <>
constexpr cudaDataType_t cuda_type<float>() {
  return CUDA_R_32F;
}
template <>
constexpr cudaDataType_t cuda_type<bf16>() {
  return CUDA_R_16BF;
}

// ---- deterministic reductions -----------------------------------------------------------
// A butterfly over the warp: a fixed pairing, and every lane ends with the same bits
// (fp addition is commutative), so the result never depends on scheduling.
__device__ __forceinline__ float warp_sum(float v) {
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2)
    v += __shfl_xor_sync(0xFFFFFFFFu, v, offset);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2)
    v = fmaxf(v, __shfl_xor_sync(0xFFFFFFFFu, v, offset));
  return v;
}

/// Sum over a 1-D block (blockDim.x a multiple of 32, at most 1024): warp butterflies, then
/// the per-warp sums in warp order. Every thread gets the result. All threads must call it.
__device__ inline float block_sum(float v) {
  __shared__ float partial[kWarpSize];
  const int lane = static_cast<int>(threadIdx.x) % kWarpSize;
  const int warp = static_cast<int>(threadIdx.x) / kWarpSize;
  const int warps = static_cast<int>(blockDim.x) / kWarpSize;
  v = warp_sum(v);
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  v = warp_sum(lane < warps ? partial[lane] : 0.0f);
  __syncthreads();  // `partial` may be reused by the next call
  return v;
}
__device__ inline float block_max(float v) {
  __shared__ float partial[kWarpSize];
  const int lane = static_cast<int>(threadIdx.x) % kWarpSize;
  const int warp = static_cast<int>(threadIdx.x) / kWarpSize;
  const int warps = static_cast<int>(blockDim.x) / kWarpSize;
  v = warp_max(v);
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  v = warp_max(lane < warps ? partial[lane] : -INFINITY);
  __syncthreads();
  return v;
}

/// Column sums over rows, for blocks of kWarpSize x kWarpSize threads: thread (x, y) has
/// summed rows y, y + 32, y + 64, ... of column x in order; thread (x, 0) then adds the 32
/// partials of its column in y order and gets the column total (others get garbage).
__device__ inline float column_total(float partial, float (&tile)[kWarpSize][kWarpSize + 1]) {
  tile[threadIdx.y][threadIdx.x] = partial;
  __syncthreads();
  float total = 0.0f;
  if (threadIdx.y == 0)
    for (int y = 0; y < kWarpSize; ++y) total += tile[y][threadIdx.x];
  return total;
}

// ---- cuBLAS -----------------------------------------------------------------------------
inline cublasHandle_t as_handle(const Blas& blas) {
  return static_cast<cublasHandle_t>(blas.handle());
}

/// C = alpha op(A) op(B) + beta C in cuBLAS's column-major terms, fp32 compute (no TF32).
template <typename TA, typename TB, typename TC>
void gemm(const Blas& blas, cublasOperation_t op_a, cublasOperation_t op_b, int m, int n, int k,
          float alpha, const TA* a, int lda, const TB* b, int ldb, float beta, TC* c, int ldc) {
  MEMENTO_CUBLAS_TRY(cublasGemmEx(as_handle(blas), op_a, op_b, m, n, k, &alpha, a, cuda_type<TA>(),
                                  lda, b, cuda_type<TB>(), ldb, &beta, c, cuda_type<TC>(), ldc,
                                  CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

/// `batches` GEMMs with the operands of batch i at a + i * stride_a (and so on).
template <typename TA, typename TB, typename TC>
void gemm_strided_batched(const Blas& blas, cublasOperation_t op_a, cublasOperation_t op_b, int m,
                          int n, int k, float alpha, const TA* a, int lda, long long stride_a,
                          const TB* b, int ldb, long long stride_b, float beta, TC* c, int ldc,
                          long long stride_c, int batches) {
  MEMENTO_CUBLAS_TRY(cublasGemmStridedBatchedEx(
      as_handle(blas), op_a, op_b, m, n, k, &alpha, a, cuda_type<TA>(), lda, stride_a, b,
      cuda_type<TB>(), ldb, stride_b, &beta, c, cuda_type<TC>(), ldc, stride_c, batches,
      CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

}  // namespace memento::nn::cuda::detail
