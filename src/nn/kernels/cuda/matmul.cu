// matmul through cuBLAS, and the Blas handle holder.
//
// Row-major X[R, K] is, to column-major cuBLAS, X^T with leading dimension K. So
//   out[N,OC] = inp[N,C] weight[OC,C]^T   is   out^T(OC x N) = op_T(weight^T) inp^T,
//   dinp[N,C] = dout[N,OC] weight[OC,C]    is   dinp^T(C x N) = weight^T dout^T,
//   dweight[OC,C] = dout^T inp             is   dweight^T(C x OC) = inp^T op_T(dout^T).
#include "nn/kernels/cuda/common.cuh"

namespace memento::nn::cuda {

// ---- Blas -------------------------------------------------------------------------------
Blas::Blas(void* stream) {
  cublasHandle_t handle = nullptr;
  MEMENTO_CUBLAS_TRY(cublasCreate(&handle));
  handle_ = handle;
  try {
    MEMENTO_CUDA_TRY(cudaMalloc(&workspace_, kWorkspaceBytes));
    // Default math: with CUBLAS_COMPUTE_32F asked for explicitly, fp32 GEMMs do not use TF32
    // and bf16 GEMMs accumulate in fp32. Atomics stay disallowed (the cuBLAS default, set
    // anyway: the few routines that may use them would not be reproducible).
    MEMENTO_CUBLAS_TRY(cublasSetMathMode(handle, CUBLAS_DEFAULT_MATH));
    MEMENTO_CUBLAS_TRY(cublasSetAtomicsMode(handle, CUBLAS_ATOMICS_NOT_ALLOWED));
    set_stream(stream);
  } catch (...) {
    if (workspace_ != nullptr) (void)MEMENTO_CUDA_LOG(cudaFree(workspace_));
    (void)cublasDestroy(handle);
    throw;
  }
}

Blas::~Blas() {
  if (handle_ != nullptr) {
    const cublasStatus_t status = cublasDestroy(static_cast<cublasHandle_t>(handle_));
    if (status != CUBLAS_STATUS_SUCCESS)
      log::error(std::string("cublasDestroy failed: ") + cublasGetStatusName(status));
  }
  if (workspace_ != nullptr) (void)MEMENTO_CUDA_LOG(cudaFree(workspace_));
}

void Blas::set_stream(void* stream) {
  const auto handle = static_cast<cublasHandle_t>(handle_);
  MEMENTO_CUBLAS_TRY(cublasSetStream(handle, detail::as_stream(stream)));
  // cublasSetStream resets the workspace to cuBLAS's per-stream pool: attach ours again, so
  // the algorithm choice never depends on what other streams are doing.
  MEMENTO_CUBLAS_TRY(cublasSetWorkspace(handle, workspace_, kWorkspaceBytes));
  stream_ = stream;
}

namespace {

using detail::ld;
using detail::st;

// out[n, o] = bias[o], so that the GEMM can add into it with beta = 1.
template <typename S>
__global__ void broadcast_bias_kernel(S* out, const S* bias, std::size_t total, int OC) {
  for (std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<std::size_t>(gridDim.x) * blockDim.x)
    out[i] = bias[i % OC];
}

// dbias[o] += sum_n dout[n, o]: blocks of 32 x 32 threads over 32 columns; thread (x, y) sums
// rows y, y + 32, ... in order, then the 32 partials are added in y order.
template <typename S>
__global__ void bias_backward_kernel(float* dbias, const S* dout, int N, int OC) {
  __shared__ float tile[detail::kWarpSize][detail::kWarpSize + 1];
  const int o = static_cast<int>(blockIdx.x) * detail::kWarpSize + static_cast<int>(threadIdx.x);
  float partial = 0.0f;
  if (o < OC)
    for (int n = static_cast<int>(threadIdx.y); n < N; n += detail::kWarpSize)
      partial += ld(dout[static_cast<std::size_t>(n) * OC + o]);
  const float total = detail::column_total(partial, tile);
  if (threadIdx.y == 0 && o < OC) dbias[o] += total;
}

}  // namespace

template <typename S>
void matmul_forward(Blas& blas, S* out, const S* inp, const S* weight, const S* bias, int N, int C,
                    int OC) {
  MEMENTO_EXPECTS(N >= 0 && C > 0 && OC > 0, "matmul_forward: bad sizes");
  if (N == 0) return;
  float beta = 0.0f;
  if (bias != nullptr) {
    const std::size_t total = static_cast<std::size_t>(N) * OC;
    broadcast_bias_kernel<<<detail::grid_for(total), detail::kBlockSize, 0,
                            detail::as_stream(blas.stream())>>>(out, bias, total, OC);
    MEMENTO_CUDA_CHECK_LAUNCH();
    beta = 1.0f;
  }
  detail::gemm(blas, CUBLAS_OP_T, CUBLAS_OP_N, OC, N, C, 1.0f, weight, C, inp, C, beta, out, OC);
}

template <typename S>
void matmul_backward(Blas& blas, S* dinp, float* dweight, float* dbias, const S* dout, const S* inp,
                     const S* weight, int N, int C, int OC) {
  MEMENTO_EXPECTS(N >= 0 && C > 0 && OC > 0, "matmul_backward: bad sizes");
  if (N == 0) return;
  detail::gemm(blas, CUBLAS_OP_N, CUBLAS_OP_N, C, N, OC, 1.0f, weight, C, dout, OC, 1.0f, dinp, C);
  detail::gemm(blas, CUBLAS_OP_N, CUBLAS_OP_T, C, OC, N, 1.0f, inp, C, dout, OC, 1.0f, dweight, C);
  if (dbias != nullptr) {
    const dim3 block(detail::kWarpSize, detail::kWarpSize);
    bias_backward_kernel<<<detail::ceil_div(static_cast<std::size_t>(OC), detail::kWarpSize), block,
                           0, detail::as_stream(blas.stream())>>>(dbias, dout, N, OC);
    MEMENTO_CUDA_CHECK_LAUNCH();
  }
}

template void matmul_forward<float>(Blas&, float*, const float*, const float*, const float*, int,
                                    int, int);
template void matmul_forward<bf16>(Blas&, bf16*, const bf16*, const bf16*, const bf16*, int, int,
                                   int);
template void matmul_backward<float>(Blas&, float*, float*, float*, const float*, const float*,
                                     const float*, int, int, int);
template void matmul_backward<bf16>(Blas&, bf16*, float*, float*, const bf16*, const bf16*,
                                    const bf16*, int, int, int);

}  // namespace memento::nn::cuda
