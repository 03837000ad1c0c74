// Layer normalisation. The row statistics are not kept: the backward recomputes them (two
// cheap passes over the input it reads anyway), so the op has a single output.
#include "nn/kernels/cpu/kernels_cpu.hpp"
#include "nn/ops/op_util.hpp"
#include "nn/ops/ops.hpp"

namespace memento::nn {
namespace {

using detail::d;
using detail::f;

class LayerNorm final : public NnOp {
 public:
  LayerNorm(int N, int C, DType dtype) : N_(N), C_(C), dtype_(dtype) {}
  std::string name() const override { return "layernorm"; }
  KernelCost cost(std::span<const std::size_t>, std::size_t) const override {
    const double n = d(N_) * C_;
    return {8 * n, 2 * n * d(dtype_bytes(dtype_)), false};
  }
  Kernel make_kernel(std::span<const Storage> in, Storage out, const RngState&) const override {
    Kernel k = detail::kernel("layernorm", cost({}, 0), dtype_,
                              [in = detail::copy(in), out, N = N_, C = C_] {
                                std::vector<float> mean(static_cast<std::size_t>(N));
                                std::vector<float> rstd(static_cast<std::size_t>(N));
                                cpu::layernorm_forward(f(out), mean.data(), rstd.data(), f(in[0]),
                                                       f(in[1]), f(in[2]), N, C);
                              });
#if MEMENTO_HAS_CUDA
    detail::set_cuda(k, dtype_,
                     [in = detail::copy(in), out, N = N_, C = C_](auto as, void* stream) {
                       using S = typename decltype(as)::type;
                       const cuda::ScratchArray<float> mean(static_cast<std::size_t>(N), stream);
                       const cuda::ScratchArray<float> rstd(static_cast<std::size_t>(N), stream);
                       cuda::layernorm_forward<S>(f<S>(out), mean.get(), rstd.get(), f<S>(in[0]),
                                                  f<S>(in[1]), f<S>(in[2]), N, C, stream);
                     });
#endif
    return k;
  }
  std::vector<bool> grad_inputs() const override { return {true, true, true}; }
  Kernel make_backward(std::span<const Storage> in, Storage, Storage dout,
                       std::span<const Storage> din, const RngState&) const override {
    KernelCost c = cost({}, 0);
    c.flops *= 3;
    c.bytes *= 2;
    Kernel k =
        detail::kernel("layernorm backward", c, dtype_,
                       [in = detail::copy(in), din = detail::copy(din), dout, N = N_, C = C_] {
                         const auto n = static_cast<std::size_t>(N);
                         std::vector<float> out(n * static_cast<std::size_t>(C));
                         std::vector<float> mean(n);
                         std::vector<float> rstd(n);
                         cpu::layernorm_forward(out.data(), mean.data(), rstd.data(), f(in[0]),
                                                f(in[1]), f(in[2]), N, C);
                         cpu::layernorm_backward(f(din[0]), f(din[1]), f(din[2]), f(dout), f(in[0]),
                                                 f(in[1]), mean.data(), rstd.data(), N, C);
                       });
#if MEMENTO_HAS_CUDA
    // The statistics come from rerunning the forward kernel (its output goes to scratch).
    // dweight and dbias are parameters' gradients: fp32.
    detail::set_cuda(k, dtype_,
                     [in = detail::copy(in), din = detail::copy(din), dout, N = N_, C = C_](
                         auto as, void* stream) {
                       using S = typename decltype(as)::type;
                       const auto n = static_cast<std::size_t>(N);
                       const cuda::ScratchArray<S> out(n * static_cast<std::size_t>(C), stream);
                       const cuda::ScratchArray<float> mean(n, stream);
                       const cuda::ScratchArray<float> rstd(n, stream);
                       cuda::layernorm_forward<S>(out.get(), mean.get(), rstd.get(), f<S>(in[0]),
                                                  f<S>(in[1]), f<S>(in[2]), N, C, stream);
                       cuda::layernorm_backward<S>(f<S>(din[0]), f(din[1]), f(din[2]), f<S>(dout),
                                                   f<S>(in[0]), f<S>(in[1]), mean.get(), rstd.get(),
                                                   N, C, stream);
                     });
#endif
    return k;
  }

 private:
  int N_, C_;
  DType dtype_;
};

}  // namespace

OpPtr make_layernorm(int N, int C, DType dtype) { return std::make_shared<LayerNorm>(N, C, dtype); }

}  // namespace memento::nn
