// Causal self-attention as ONE op, qkv -> out, whose score matrices never outlive it: the
// memory behaviour of FlashAttention (what the runtime tracks is qkv and out, never the
// B·NH·T² scores). Its backward recomputes the scores from qkv.
//
// The kernels are the unfused ones (nn/kernels/{cpu,cuda}/attention) run a group of
// sequences at a time with the scores and their gradients in scratch of at most
// max(`max_scratch`, one sequence's) bytes, so the arithmetic is exactly attention_probs +
// attention_values' and the results are the same bits. The cost, what the sim backend
// times, is a fused kernel's (FlashAttention-2): matrix products on the causal triangle
// only, HBM traffic of qkv, out and their gradients only (an idealisation: it ignores the
// re-reads of K and V per query tile, and counts reading out for the backward's row sums,
// which this implementation recomputes instead). Real backends time what they run.
#include <fmt/format.h>

#include <algorithm>
#include <vector>

#include "nn/kernels/cpu/kernels_cpu.hpp"
#include "nn/ops/op_util.hpp"
#include "nn/ops/ops.hpp"

namespace memento::nn {
namespace {

using detail::d;
using detail::f;

struct Shape {
  int B, T, C, NH;
  [[nodiscard]] std::size_t z(int v) const { return static_cast<std::size_t>(v); }
  /// Elements of one sequence's scores (all heads), of its qkv and of its out.
  [[nodiscard]] std::size_t scores() const { return z(NH) * z(T) * z(T); }
  [[nodiscard]] std::size_t qkv() const { return z(T) * z(3 * C); }
  [[nodiscard]] std::size_t out() const { return z(T) * z(C); }
  /// Scores on the causal triangle, all sequences and heads.
  [[nodiscard]] double causal() const { return d(z(B)) * NH * (d(z(T)) * (T + 1) / 2); }
  [[nodiscard]] double tokens() const { return d(z(B)) * T * C; }
};

class FusedAttention final : public NnOp {
 public:
  FusedAttention(Shape s, DType dtype, std::size_t max_scratch) : s_(s), dtype_(dtype) {
    // Backward (the most): the scores, probabilities, their gradients and out.
    const std::size_t per_sequence = (4 * s_.scores() + s_.out()) * dtype_bytes(dtype_);
    group_ = static_cast<int>(
        std::clamp<std::size_t>(max_scratch / per_sequence, 1, static_cast<std::size_t>(s_.B)));
  }
  std::string name() const override { return "fused attention"; }
  KernelCost cost(std::span<const std::size_t>, std::size_t) const override {
    // QKᵀ and PV on the causal triangle (2·hs each per score); reads qkv, writes out.
    const double hs = s_.C / s_.NH;
    return {s_.causal() * 4 * hs, d(dtype_bytes(dtype_)) * 4 * s_.tokens(), dtype_ == DType::bf16};
  }
  Kernel make_kernel(std::span<const Storage> in, Storage out, const RngState&) const override {
    Kernel k = detail::kernel(
        "fused attention", cost({}, 0), dtype_, [qkv = in[0], out, s = s_, g = group_] {
          const std::size_t n = s.z(g) * s.scores();
          std::vector<float> pre(n), att(n), values(s.z(g) * s.out());
          for (int b = 0; b < s.B; b += g) {
            const int m = std::min(g, s.B - b);
            const float* x = f(qkv) + s.z(b) * s.qkv();
            // As the eager pair: the probabilities, then att · V.
            cpu::attention_forward(values.data(), pre.data(), att.data(), x, m, s.T, s.C, s.NH);
            cpu::attention_values(f(out) + s.z(b) * s.out(), x, att.data(), m, s.T, s.C, s.NH);
          }
        });
#if MEMENTO_HAS_CUDA
    detail::set_cuda(k, dtype_, [qkv = in[0], out, s = s_, g = group_](auto as, void* stream) {
      using S = typename decltype(as)::type;
      const cuda::ScratchArray<S> pre(s.z(g) * s.scores(), stream);
      const cuda::ScratchArray<S> att(s.z(g) * s.scores(), stream);
      for (int b = 0; b < s.B; b += g)
        cuda::attention_forward<S>(cuda::blas_for(stream), f<S>(out) + s.z(b) * s.out(), pre.get(),
                                   att.get(), f<S>(qkv) + s.z(b) * s.qkv(), std::min(g, s.B - b),
                                   s.T, s.C, s.NH);
    });
#endif
    return k;
  }
  std::vector<bool> grad_inputs() const override { return {true}; }
  Kernel make_backward(std::span<const Storage> in, Storage, Storage dout,
                       std::span<const Storage> din, const RngState&) const override {
    // FlashAttention-2's backward: QKᵀ recomputed, then dV, dP, dQ and dK (five products of
    // 2·hs per score); reads qkv, out and dout, accumulates into dqkv.
    const double hs = s_.C / s_.NH;
    const KernelCost c{s_.causal() * 10 * hs, d(dtype_bytes(dtype_)) * 11 * s_.tokens(),
                       dtype_ == DType::bf16};
    Kernel k = detail::kernel(
        "fused attention backward", c, dtype_,
        [qkv = in[0], dqkv = din[0], dout, s = s_, g = group_] {
          const std::size_t n = s.z(g) * s.scores();
          std::vector<float> pre(n), att(n), dpre(n), datt(n), values(s.z(g) * s.out());
          for (int b = 0; b < s.B; b += g) {
            const int m = std::min(g, s.B - b);
            const float* x = f(qkv) + s.z(b) * s.qkv();
            // The forward's scores again: the same kernel on the same qkv, the same bits.
            cpu::attention_forward(values.data(), pre.data(), att.data(), x, m, s.T, s.C, s.NH);
            cpu::attention_backward(f(dqkv) + s.z(b) * s.qkv(), dpre.data(), datt.data(),
                                    f(dout) + s.z(b) * s.out(), x, att.data(), m, s.T, s.C, s.NH);
          }
        });
#if MEMENTO_HAS_CUDA
    detail::set_cuda(
        k, dtype_, [qkv = in[0], dqkv = din[0], dout, s = s_, g = group_](auto as, void* stream) {
          using S = typename decltype(as)::type;
          const std::size_t n = s.z(g) * s.scores();
          const cuda::ScratchArray<S> pre(n, stream), att(n, stream), dpre(n, stream),
              datt(n, stream), values(s.z(g) * s.out(), stream);
          cuda::Blas& blas = cuda::blas_for(stream);
          for (int b = 0; b < s.B; b += g) {
            const int m = std::min(g, s.B - b);
            const S* x = f<S>(qkv) + s.z(b) * s.qkv();
            cuda::attention_forward<S>(blas, values.get(), pre.get(), att.get(), x, m, s.T, s.C,
                                       s.NH);
            cuda::attention_backward<S>(blas, f<S>(dqkv) + s.z(b) * s.qkv(), dpre.get(), datt.get(),
                                        f<S>(dout) + s.z(b) * s.out(), x, att.get(), m, s.T, s.C,
                                        s.NH);
          }
        });
#endif
    return k;
  }

 private:
  Shape s_;
  DType dtype_;
  int group_ = 1;  // sequences per kernel call
};

}  // namespace

OpPtr make_fused_attention(int B, int T, int C, int NH, DType dtype, std::size_t max_scratch) {
  MEMENTO_EXPECTS(B > 0 && T > 0 && NH > 0 && C > 0 && C % NH == 0,
                  fmt::format("fused attention: B={}, T={}, C={}, NH={}: sizes must be positive "
                              "and C a multiple of NH",
                              B, T, C, NH));
  return std::make_shared<FusedAttention>(Shape{B, T, C, NH}, dtype, max_scratch);
}

}  // namespace memento::nn
