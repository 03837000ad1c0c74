// Token and position embeddings.
#include "nn/kernels/cpu/kernels_cpu.hpp"
#include "nn/ops/op_util.hpp"
#include "nn/ops/ops.hpp"

namespace memento::nn {
namespace {

using detail::d;
using detail::f;
using detail::idx;

class Encoder final : public NnOp {
 public:
  Encoder(int B, int T, int C, int V, DType dtype) : B_(B), T_(T), C_(C), dtype_(dtype) { (void)V; }
  std::string name() const override { return "encoder"; }
  KernelCost cost(std::span<const std::size_t>, std::size_t) const override {
    const double n = d(B_) * T_ * C_;
    return {n, 3 * n * d(dtype_bytes(dtype_)), false};
  }
  Kernel make_kernel(std::span<const Storage> in, Storage out, const RngState&) const override {
    Kernel k = detail::kernel(
        "encoder", cost({}, 0), dtype_, [in = detail::copy(in), out, B = B_, T = T_, C = C_] {
          cpu::encoder_forward(f(out), idx(in[0]), f(in[1]), f(in[2]), B, T, C);
        });
#if MEMENTO_HAS_CUDA
    detail::set_cuda(k, dtype_,
                     [in = detail::copy(in), out, B = B_, T = T_, C = C_](auto as, void* stream) {
                       using S = typename decltype(as)::type;
                       cuda::encoder_forward<S>(f<S>(out), idx(in[0]), f<S>(in[1]), f<S>(in[2]), B,
                                                T, C, stream);
                     });
#endif
    return k;
  }
  std::vector<bool> grad_inputs() const override { return {false, true, true}; }
  Kernel make_backward(std::span<const Storage> in, Storage, Storage dout,
                       std::span<const Storage> din, const RngState&) const override {
    Kernel k = detail::kernel(
        "encoder backward", cost({}, 0), dtype_,
        [in = detail::copy(in), din = detail::copy(din), dout, B = B_, T = T_, C = C_] {
          cpu::encoder_backward(f(din[1]), f(din[2]), f(dout), idx(in[0]), B, T, C);
        });
#if MEMENTO_HAS_CUDA
    // dwte and dwpe are parameters' gradients: fp32.
    detail::set_cuda(k, dtype_,
                     [in = detail::copy(in), din = detail::copy(din), dout, B = B_, T = T_, C = C_](
                         auto as, void* stream) {
                       using S = typename decltype(as)::type;
                       cuda::encoder_backward<S>(f(din[1]), f(din[2]), f<S>(dout), idx(in[0]), B, T,
                                                 C, stream);
                     });
#endif
    return k;
  }

 private:
  int B_, T_, C_;
  DType dtype_;
};

}  // namespace

OpPtr make_encoder(int B, int T, int C, int V, DType dtype) {
  return std::make_shared<Encoder>(B, T, C, V, dtype);
}

}  // namespace memento::nn
