// Compiled with -O3 -fno-math-errno -ffp-contract=off (src/nn/CMakeLists.txt): vectorised
// loops, std::sqrt as one instruction, and no fused multiply-adds, which would round
// differently from the scalar reference.
#include "nn/kernels/cpu/adamw_host.hpp"

#include <algorithm>
#include <bit>
#include <cmath>

namespace memento::nn::cpu {
namespace {

// Elements per block: the block's gradient (widened), p, m, v and output stay in L1/L2
// between the loops of one block.
constexpr std::size_t kBlock = 2048;

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__SANITIZE_THREAD__)
#define MEMENTO_ADAMW_CLONES [[gnu::target_clones("avx2", "default")]]
#else
#define MEMENTO_ADAMW_CLONES
#endif

// The expression of adamw_update<float>, term for term.
MEMENTO_ADAMW_CLONES void update(float* __restrict p, const float* __restrict g,
                                 float* __restrict m, float* __restrict v, std::size_t n, float lr,
                                 float beta1, float beta2, float eps, float weight_decay,
                                 float correction1, float correction2) {
  const float one_minus_beta1 = 1.0f - beta1;
  const float one_minus_beta2 = 1.0f - beta2;
  for (std::size_t i = 0; i < n; ++i) {
    const float gi = g[i];
    const float mi = beta1 * m[i] + one_minus_beta1 * gi;
    const float vi = beta2 * v[i] + one_minus_beta2 * gi * gi;
    m[i] = mi;
    v[i] = vi;
    const float m_hat = mi / correction1;
    const float v_hat = vi / correction2;
    p[i] -= lr * (m_hat / (std::sqrt(v_hat) + eps) + weight_decay * p[i]);
  }
}

MEMENTO_ADAMW_CLONES void widen(float* __restrict out, const std::uint16_t* __restrict in,
                                std::size_t n) {
  for (std::size_t i = 0; i < n; ++i)
    out[i] = std::bit_cast<float>(static_cast<std::uint32_t>(in[i]) << 16);
}

// cuda::to_bf16 without its branch, so that it vectorises.
MEMENTO_ADAMW_CLONES void narrow(std::uint16_t* __restrict out, const float* __restrict in,
                                 std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) {
    const std::uint32_t u = std::bit_cast<std::uint32_t>(in[i]);
    const std::uint32_t rounded = (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16;
    out[i] = static_cast<std::uint16_t>((u & 0x7FFFFFFFu) > 0x7F800000u ? 0x7FFFu : rounded);
  }
}

}  // namespace

void adamw_host_update(const AdamWBuffers& b, std::size_t begin, std::size_t end,
                       const AdamWScalars& s) {
  // As adamw_update<float> computes them.
  const float correction1 = 1.0f - std::pow(s.beta1, static_cast<float>(s.t));
  const float correction2 = 1.0f - std::pow(s.beta2, static_cast<float>(s.t));
  alignas(64) float widened[kBlock];
  for (std::size_t i = begin; i < end; i += kBlock) {
    const std::size_t n = std::min(kBlock, end - i);
    const float* g = b.grad_f32 != nullptr ? b.grad_f32 + i : widened;
    if (b.grad_f32 == nullptr) widen(widened, b.grad_bf16 + i, n);
    update(b.master + i, g, b.m + i, b.v + i, n, s.lr, s.beta1, s.beta2, s.eps, s.weight_decay,
           correction1, correction2);
    if (b.out_f32 != nullptr) std::copy_n(b.master + i, n, b.out_f32 + i);
    if (b.out_bf16 != nullptr) narrow(b.out_bf16 + i, b.master + i, n);
  }
}

void f32_to_bf16(std::uint16_t* out, const float* in, std::size_t n) { narrow(out, in, n); }

}  // namespace memento::nn::cpu
