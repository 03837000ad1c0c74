// Softmax cross-entropy: per-token losses (fp32). The probabilities are not kept: the
// backward recomputes them from the logits it needs anyway.
#include "nn/kernels/cpu/kernels_cpu.hpp"
#include "nn/ops/op_util.hpp"
#include "nn/ops/ops.hpp"

namespace memento::nn {
namespace {

using detail::d;
using detail::f;
using detail::idx;

class CrossEntropy final : public NnOp {
 public:
  CrossEntropy(int N, int V, DType dtype) : N_(N), V_(V), dtype_(dtype) {}
  std::string name() const override { return "crossentropy"; }
  KernelCost cost(std::span<const std::size_t>, std::size_t) const override {
    const double n = d(static_cast<std::size_t>(N_)) * V_;
    return {5 * n, n * d(dtype_bytes(dtype_)) + 8.0 * N_, false};
  }
  Kernel make_kernel(std::span<const Storage> in, Storage out, const RngState&) const override {
    Kernel k = detail::kernel(
        "crossentropy", cost({}, 0), dtype_,
        [logits = in[0], targets = in[1], out, N = N_, V = V_] {
          std::vector<float> probs(static_cast<std::size_t>(N) * static_cast<std::size_t>(V));
          cpu::crossentropy_forward(probs.data(), f(out), f(logits), idx(targets), N, V);
        });
#if MEMENTO_HAS_CUDA
    // The probabilities go to scratch; the losses (the output) are fp32 on every dtype.
    detail::set_cuda(k, dtype_,
                     [logits = in[0], targets = in[1], out, N = N_, V = V_](auto as, void* stream) {
                       using S = typename decltype(as)::type;
                       const cuda::ScratchArray<S> probs(
                           static_cast<std::size_t>(N) * static_cast<std::size_t>(V), stream);
                       cuda::crossentropy_forward<S>(probs.get(), f(out), f<S>(logits),
                                                     idx(targets), N, V, stream);
                     });
#endif
    return k;
  }
  std::vector<bool> grad_inputs() const override { return {true, false}; }
  Kernel make_backward(std::span<const Storage> in, Storage, Storage dout,
                       std::span<const Storage> din, const RngState&) const override {
    KernelCost c = cost({}, 0);
    c.bytes *= 2;
    Kernel k = detail::kernel(
        "crossentropy backward", c, dtype_,
        [logits = in[0], targets = in[1], dlogits = din[0], dout, N = N_, V = V_] {
          std::vector<float> probs(static_cast<std::size_t>(N) * static_cast<std::size_t>(V));
          std::vector<float> losses(static_cast<std::size_t>(N));
          cpu::crossentropy_forward(probs.data(), losses.data(), f(logits), idx(targets), N, V);
          cpu::crossentropy_backward(f(dlogits), probs.data(), f(dout), idx(targets), N, V);
        });
#if MEMENTO_HAS_CUDA
    // The probabilities are recomputed into scratch (the losses too, unused); the incoming
    // gradient of the losses is fp32 like them.
    detail::set_cuda(k, dtype_,
                     [logits = in[0], targets = in[1], dlogits = din[0], dout, N = N_, V = V_](
                         auto as, void* stream) {
                       using S = typename decltype(as)::type;
                       const cuda::ScratchArray<S> probs(
                           static_cast<std::size_t>(N) * static_cast<std::size_t>(V), stream);
                       const cuda::ScratchArray<float> losses(static_cast<std::size_t>(N), stream);
                       cuda::crossentropy_forward<S>(probs.get(), losses.get(), f<S>(logits),
                                                     idx(targets), N, V, stream);
                       cuda::crossentropy_backward<S>(f<S>(dlogits), probs.get(), f(dout),
                                                      idx(targets), N, V, stream);
                     });
#endif
    return k;
  }

 private:
  int N_, V_;
  DType dtype_;
};

}  // namespace

OpPtr make_crossentropy(int N, int V, DType dtype) {
  return std::make_shared<CrossEntropy>(N, V, dtype);
}

}  // namespace memento::nn
