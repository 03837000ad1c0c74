// Linear (matmul + bias): the matrix products of the model.
#include <fmt/format.h>

#include "nn/kernels/cpu/kernels_cpu.hpp"
#include "nn/ops/op_util.hpp"
#include "nn/ops/ops.hpp"

namespace memento::nn {
namespace {

using detail::d;
using detail::f;

class Linear final : public NnOp {
 public:
  Linear(int N, int C, int OC, bool bias, DType dtype)
      : N_(N), C_(C), OC_(OC), bias_(bias), dtype_(dtype) {}
  std::string name() const override { return fmt::format("linear {}x{}x{}", N_, C_, OC_); }
  KernelCost cost(std::span<const std::size_t>, std::size_t) const override {
    const double s = d(dtype_bytes(dtype_));
    return {2.0 * N_ * C_ * OC_, s * (d(N_) * C_ + d(OC_) * C_ + d(N_) * OC_),
            dtype_ == DType::bf16};
  }
  Kernel make_kernel(std::span<const Storage> in, Storage out, const RngState&) const override {
    Kernel k = detail::kernel(name(), cost({}, 0), dtype_,
                              [in = detail::copy(in), out, N = N_, C = C_, OC = OC_, bias = bias_] {
                                cpu::matmul_forward(f(out), f(in[0]), f(in[1]),
                                                    bias ? f(in[2]) : nullptr, N, C, OC);
                              });
#if MEMENTO_HAS_CUDA
    detail::set_cuda(k, dtype_,
                     [in = detail::copy(in), out, N = N_, C = C_, OC = OC_, bias = bias_](
                         auto as, void* stream) {
                       using S = typename decltype(as)::type;
                       cuda::matmul_forward<S>(cuda::blas_for(stream), f<S>(out), f<S>(in[0]),
                                               f<S>(in[1]), bias ? f<S>(in[2]) : nullptr, N, C, OC);
                     });
#endif
    return k;
  }
  std::vector<bool> grad_inputs() const override {
    return bias_ ? std::vector<bool>{true, true, true} : std::vector<bool>{true, true};
  }
  Kernel make_backward(std::span<const Storage> in, Storage, Storage dout,
                       std::span<const Storage> din, const RngState&) const override {
    KernelCost c = cost({}, 0);
    c.flops *= 2;
    c.bytes *= 2;
    Kernel k =
        detail::kernel(name() + " backward", c, dtype_,
                       [in = detail::copy(in), din = detail::copy(din), dout, N = N_, C = C_,
                        OC = OC_, bias = bias_] {
                         cpu::matmul_backward(f(din[0]), f(din[1]), bias ? f(din[2]) : nullptr,
                                              f(dout), f(in[0]), f(in[1]), N, C, OC);
                       });
#if MEMENTO_HAS_CUDA
    // The weight's and bias's gradients are fp32 (parameters' gradients), the input's is S.
    detail::set_cuda(k, dtype_,
                     [in = detail::copy(in), din = detail::copy(din), dout, N = N_, C = C_,
                      OC = OC_, bias = bias_](auto as, void* stream) {
                       using S = typename decltype(as)::type;
                       cuda::matmul_backward<S>(cuda::blas_for(stream), f<S>(din[0]), f(din[1]),
                                                bias ? f(din[2]) : nullptr, f<S>(dout), f<S>(in[0]),
                                                f<S>(in[1]), N, C, OC);
                     });
#endif
    return k;
  }

 private:
  int N_, C_, OC_;
  bool bias_;
  DType dtype_;
};

}  // namespace

OpPtr make_linear(int N, int C, int OC, bool bias, DType dtype) {
  return std::make_shared<Linear>(N, C, OC, bias, dtype);
}

}  // namespace memento::nn
