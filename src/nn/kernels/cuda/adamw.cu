// AdamW on fp32 master parameters (Loshchilov & Hutter: decoupled weight decay), with bias
// correction, optionally writing the updated parameters in the storage type for the forward.
#include <cmath>
#include <string>

#include "nn/kernels/cuda/common.cuh"

namespace memento::nn::cuda {
namespace {

using detail::st;

template <typename S>
__global__ void adamw_kernel(float* params, S* params_copy, const float* grads, float* m, float* v,
                             std::size_t n, float lr, float beta1, float beta2, float eps,
                             float weight_decay, float correction1, float correction2) {
  for (std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    const float g = grads[i];
    const float mi = beta1 * m[i] + (1.0f - beta1) * g;
    const float vi = beta2 * v[i] + (1.0f - beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    const float m_hat = mi / correction1;
    const float v_hat = vi / correction2;
    float p = params[i];
    p -= lr * (m_hat / (sqrtf(v_hat) + eps) + weight_decay * p);
    params[i] = p;
    if (params_copy != nullptr) params_copy[i] = st<S>(p);
  }
}

}  // namespace

template <typename S>
void adamw_step(float* params, S* params_copy, const float* grads, float* m, float* v,
                std::size_t n, float lr, float beta1, float beta2, float eps, float weight_decay,
                int t, void* stream) {
  MEMENTO_EXPECTS(t >= 1, "adamw_step: the step t counts from 1, got " + std::to_string(t));
  if (n == 0) return;
  const float correction1 = 1.0f - std::pow(beta1, static_cast<float>(t));
  const float correction2 = 1.0f - std::pow(beta2, static_cast<float>(t));
  adamw_kernel<<<detail::grid_for(n), detail::kBlockSize, 0, detail::as_stream(stream)>>>(
      params, params_copy, grads, m, v, n, lr, beta1, beta2, eps, weight_decay, correction1,
      correction2);
  MEMENTO_CUDA_CHECK_LAUNCH();
}

template void adamw_step<float>(float*, float*, const float*, float*, float*, std::size_t, float,
                                float, float, float, float, int, void*);
template void adamw_step<bf16>(float*, bf16*, const float*, float*, float*, std::size_t, float,
                               float, float, float, float, int, void*);

}  // namespace memento::nn::cuda
