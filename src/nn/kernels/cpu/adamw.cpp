// The AdamW optimizer step.
#include <cmath>
#include <cstddef>

#include "nn/kernels/cpu/kernels_cpu.hpp"

namespace memento::nn::cpu {

template <typename T>
void adamw_update(T* params, const T* grads, T* m, T* v, std::size_t n, T lr, T beta1, T beta2,
                  T eps, T weight_decay, int t) {
  const T correction1 = T(1) - std::pow(beta1, static_cast<T>(t));
  const T correction2 = T(1) - std::pow(beta2, static_cast<T>(t));
  for (std::size_t i = 0; i < n; ++i) {
    const T g = grads[i];
    const T mi = beta1 * m[i] + (T(1) - beta1) * g;
    const T vi = beta2 * v[i] + (T(1) - beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    const T m_hat = mi / correction1;
    const T v_hat = vi / correction2;
    // Decoupled decay (Loshchilov & Hutter): applied to the weight, not folded into the gradient.
    params[i] -= lr * (m_hat / (std::sqrt(v_hat) + eps) + weight_decay * params[i]);
  }
}

template void adamw_update<float>(float*, const float*, float*, float*, std::size_t, float, float,
                                  float, float, float, int);
template void adamw_update<double>(double*, const double*, double*, double*, std::size_t, double,
                                   double, double, double, double, int);

}  // namespace memento::nn::cpu
