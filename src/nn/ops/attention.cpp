// Causal self-attention as two ops, so that its score matrix att[B,NH,T,T] (quadratic in
// the sequence, cheap to recompute from qkv) is an activation of its own that the runtime
// may discard or offload: attention_probs (qkv -> att) and attention_values (qkv, att ->
// out). attention_values' backward runs the whole attention backward (through att into q
// and k as well), so attention_probs needs none.
#include <cmath>

#include "nn/kernels/cpu/kernels_cpu.hpp"
#include "nn/ops/op_util.hpp"
#include "nn/ops/ops.hpp"

namespace memento::nn {
namespace {

using detail::d;
using detail::f;

struct Shape {
  int B, T, C, NH;
  [[nodiscard]] double scores() const { return d(static_cast<std::size_t>(B)) * NH * T * T; }
  [[nodiscard]] double tokens() const { return d(static_cast<std::size_t>(B)) * T * C; }
  [[nodiscard]] std::size_t score_count() const { return static_cast<std::size_t>(scores()); }
};

class AttentionProbs final : public NnOp {
 public:
  AttentionProbs(Shape s, DType dtype) : s_(s), dtype_(dtype) {}
  std::string name() const override { return "attention probs"; }
  KernelCost cost(std::span<const std::size_t>, std::size_t) const override {
    // QKᵀ (2·hs per score) and the softmax (~5 per score); reads q and k, writes the
    // scores twice (scaled, then normalised) and reads them back once.
    const double hs = s_.C / s_.NH;
    return {s_.scores() * (2 * hs + 5),
            d(dtype_bytes(dtype_)) * (2 * s_.tokens() + 3 * s_.scores()), dtype_ == DType::bf16};
  }
  Kernel make_kernel(std::span<const Storage> in, Storage out, const RngState&) const override {
    Kernel k = detail::kernel("attention probs", cost({}, 0), dtype_, [qkv = in[0], out, s = s_] {
      std::vector<float> values(static_cast<std::size_t>(s.tokens()));
      std::vector<float> preatt(s.score_count());
      cpu::attention_forward(values.data(), preatt.data(), f(out), f(qkv), s.B, s.T, s.C, s.NH);
    });
#if MEMENTO_HAS_CUDA
    // attention_forward's values output is not wanted here: scratch, like preatt.
    detail::set_cuda(k, dtype_, [qkv = in[0], out, s = s_](auto as, void* stream) {
      using S = typename decltype(as)::type;
      const cuda::ScratchArray<S> values(static_cast<std::size_t>(s.tokens()), stream);
      const cuda::ScratchArray<S> preatt(s.score_count(), stream);
      cuda::attention_forward<S>(cuda::blas_for(stream), values.get(), preatt.get(), f<S>(out),
                                 f<S>(qkv), s.B, s.T, s.C, s.NH);
    });
#endif
    return k;
  }
  std::vector<bool> grad_inputs() const override { return {false}; }
  Kernel make_backward(std::span<const Storage>, Storage, Storage, std::span<const Storage>,
                       const RngState&) const override {
    MEMENTO_FAIL(LogicError, "attention probs has no backward: attention values' covers it");
  }

 private:
  Shape s_;
  DType dtype_;
};

class AttentionValues final : public NnOp {
 public:
  AttentionValues(Shape s, DType dtype) : s_(s), dtype_(dtype) {}
  std::string name() const override { return "attention values"; }
  KernelCost cost(std::span<const std::size_t>, std::size_t) const override {
    const double hs = s_.C / s_.NH;
    return {s_.scores() * 2 * hs, d(dtype_bytes(dtype_)) * (2 * s_.tokens() + s_.scores()),
            dtype_ == DType::bf16};
  }
  Kernel make_kernel(std::span<const Storage> in, Storage out, const RngState&) const override {
    Kernel k = detail::kernel("attention values", cost({}, 0), dtype_,
                              [qkv = in[0], att = in[1], out, s = s_] {
                                cpu::attention_values(f(out), f(qkv), f(att), s.B, s.T, s.C, s.NH);
                              });
#if MEMENTO_HAS_CUDA
    // No CUDA launcher computes att · V alone: rerun the whole attention forward with the
    // scores in scratch. The recomputed att has the same bits as the stored `att` input (the
    // same deterministic kernels on the same qkv, see kernels_cuda.hpp), so `out` is exactly
    // att · V; the stored scores are simply not read.
    detail::set_cuda(k, dtype_, [qkv = in[0], out, s = s_](auto as, void* stream) {
      using S = typename decltype(as)::type;
      const cuda::ScratchArray<S> preatt(s.score_count(), stream);
      const cuda::ScratchArray<S> att(s.score_count(), stream);
      cuda::attention_forward<S>(cuda::blas_for(stream), f<S>(out), preatt.get(), att.get(),
                                 f<S>(qkv), s.B, s.T, s.C, s.NH);
    });
#endif
    return k;
  }
  std::vector<bool> grad_inputs() const override { return {true, false}; }
  Kernel make_backward(std::span<const Storage> in, Storage, Storage dout,
                       std::span<const Storage> din, const RngState&) const override {
    // Both products backward (dV, dAtt; dQ, dK) and the softmax's.
    const double hs = s_.C / s_.NH;
    KernelCost c{s_.scores() * (8 * hs + 5),
                 d(dtype_bytes(dtype_)) * (6 * s_.tokens() + 4 * s_.scores()),
                 dtype_ == DType::bf16};
    Kernel k = detail::kernel(
        "attention backward", c, dtype_, [qkv = in[0], att = in[1], dqkv = din[0], dout, s = s_] {
          std::vector<float> dpreatt(s.score_count());
          std::vector<float> datt(s.score_count());
          cpu::attention_backward(f(dqkv), dpreatt.data(), datt.data(), f(dout), f(qkv), f(att),
                                  s.B, s.T, s.C, s.NH);
        });
#if MEMENTO_HAS_CUDA
    detail::set_cuda(
        k, dtype_, [qkv = in[0], att = in[1], dqkv = din[0], dout, s = s_](auto as, void* stream) {
          using S = typename decltype(as)::type;
          const cuda::ScratchArray<S> dpreatt(s.score_count(), stream);
          const cuda::ScratchArray<S> datt(s.score_count(), stream);
          cuda::attention_backward<S>(cuda::blas_for(stream), f<S>(dqkv), dpreatt.get(), datt.get(),
                                      f<S>(dout), f<S>(qkv), f<S>(att), s.B, s.T, s.C, s.NH);
        });
#endif
    return k;
  }

 private:
  Shape s_;
  DType dtype_;
};

}  // namespace

OpPtr make_attention_probs(int B, int T, int C, int NH, DType dtype) {
  MEMENTO_EXPECTS(NH > 0 && C % NH == 0, "attention: channels must be a multiple of heads");
  return std::make_shared<AttentionProbs>(Shape{B, T, C, NH}, dtype);
}

OpPtr make_attention_values(int B, int T, int C, int NH, DType dtype) {
  MEMENTO_EXPECTS(NH > 0 && C % NH == 0, "attention: channels must be a multiple of heads");
  return std::make_shared<AttentionValues>(Shape{B, T, C, NH}, dtype);
}

}  // namespace memento::nn
