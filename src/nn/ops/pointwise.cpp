// Element-wise ops: GELU, residual add, dropout.
#include "nn/kernels/cpu/kernels_cpu.hpp"
#include "nn/ops/op_util.hpp"
#include "nn/ops/ops.hpp"

namespace memento::nn {
namespace {

using detail::d;
using detail::f;

class Gelu final : public NnOp {
 public:
  Gelu(std::size_t n, DType dtype) : n_(n), dtype_(dtype) {}
  std::string name() const override { return "gelu"; }
  KernelCost cost(std::span<const std::size_t>, std::size_t) const override {
    return {8 * d(n_), 2 * d(n_) * d(dtype_bytes(dtype_)), false};
  }
  Kernel make_kernel(std::span<const Storage> in, Storage out, const RngState&) const override {
    Kernel k = detail::kernel("gelu", cost({}, 0), dtype_,
                              [x = in[0], out, n = n_] { cpu::gelu_forward(f(out), f(x), n); });
#if MEMENTO_HAS_CUDA
    detail::set_cuda(k, dtype_, [x = in[0], out, n = n_](auto as, void* stream) {
      using S = typename decltype(as)::type;
      cuda::gelu_forward<S>(f<S>(out), f<S>(x), n, stream);
    });
#endif
    return k;
  }
  std::vector<bool> grad_inputs() const override { return {true}; }
  Kernel make_backward(std::span<const Storage> in, Storage, Storage dout,
                       std::span<const Storage> din, const RngState&) const override {
    Kernel k = detail::kernel(
        "gelu backward", cost({}, 0), dtype_,
        [x = in[0], dx = din[0], dout, n = n_] { cpu::gelu_backward(f(dx), f(x), f(dout), n); });
#if MEMENTO_HAS_CUDA
    detail::set_cuda(k, dtype_, [x = in[0], dx = din[0], dout, n = n_](auto as, void* stream) {
      using S = typename decltype(as)::type;
      cuda::gelu_backward<S>(f<S>(dx), f<S>(x), f<S>(dout), n, stream);
    });
#endif
    return k;
  }

 private:
  std::size_t n_;
  DType dtype_;
};

class Residual final : public NnOp {
 public:
  Residual(std::size_t n, DType dtype) : n_(n), dtype_(dtype) {}
  std::string name() const override { return "residual"; }
  KernelCost cost(std::span<const std::size_t>, std::size_t) const override {
    return {d(n_), 3 * d(n_) * d(dtype_bytes(dtype_)), false};
  }
  Kernel make_kernel(std::span<const Storage> in, Storage out, const RngState&) const override {
    Kernel k = detail::kernel("residual", cost({}, 0), dtype_, [a = in[0], b = in[1], out, n = n_] {
      cpu::residual_forward(f(out), f(a), f(b), n);
    });
#if MEMENTO_HAS_CUDA
    detail::set_cuda(k, dtype_, [a = in[0], b = in[1], out, n = n_](auto as, void* stream) {
      using S = typename decltype(as)::type;
      cuda::residual_forward<S>(f<S>(out), f<S>(a), f<S>(b), n, stream);
    });
#endif
    return k;
  }
  std::vector<bool> grad_inputs() const override { return {true, true}; }
  bool backward_reads_input(std::size_t) const override { return false; }
  Kernel make_backward(std::span<const Storage>, Storage, Storage dout,
                       std::span<const Storage> din, const RngState&) const override {
    Kernel k = detail::kernel("residual backward", cost({}, 0), dtype_,
                              [da = din[0], db = din[1], dout, n = n_] {
                                cpu::residual_backward(f(da), f(db), f(dout), n);
                              });
#if MEMENTO_HAS_CUDA
    detail::set_cuda(k, dtype_, [da = din[0], db = din[1], dout, n = n_](auto as, void* stream) {
      using S = typename decltype(as)::type;
      cuda::residual_backward<S>(f<S>(da), f<S>(db), f<S>(dout), n, stream);
    });
#endif
    return k;
  }

 private:
  std::size_t n_;
  DType dtype_;
};

class Dropout final : public NnOp {
 public:
  Dropout(std::size_t n, float p, DType dtype) : n_(n), p_(p), dtype_(dtype) {
    MEMENTO_EXPECTS(p >= 0 && p < 1, "dropout: the drop probability must be in [0, 1)");
  }
  std::string name() const override { return "dropout"; }
  KernelCost cost(std::span<const std::size_t>, std::size_t) const override {
    return {4 * d(n_), 2 * d(n_) * d(dtype_bytes(dtype_)), false};
  }
  Kernel make_kernel(std::span<const Storage> in, Storage out, const RngState& rng) const override {
    Kernel k =
        detail::kernel("dropout", cost({}, 0), dtype_, [x = in[0], out, n = n_, p = p_, rng] {
          cpu::dropout_forward(f(out), f(x), n, p, rng.seed, rng.offset);
        });
#if MEMENTO_HAS_CUDA
    detail::set_cuda(k, dtype_, [x = in[0], out, n = n_, p = p_, rng](auto as, void* stream) {
      using S = typename decltype(as)::type;
      cuda::dropout_forward<S>(f<S>(out), f<S>(x), n, p, rng.seed, rng.offset, stream);
    });
#endif
    return k;
  }
  std::vector<bool> grad_inputs() const override { return {true}; }
  bool backward_reads_input(std::size_t) const override { return false; }
  Kernel make_backward(std::span<const Storage>, Storage, Storage dout,
                       std::span<const Storage> din, const RngState& rng) const override {
    Kernel k = detail::kernel("dropout backward", cost({}, 0), dtype_,
                              [dx = din[0], dout, n = n_, p = p_, rng] {
                                cpu::dropout_backward(f(dx), f(dout), n, p, rng.seed, rng.offset);
                              });
#if MEMENTO_HAS_CUDA
    detail::set_cuda(k, dtype_, [dx = din[0], dout, n = n_, p = p_, rng](auto as, void* stream) {
      using S = typename decltype(as)::type;
      cuda::dropout_backward<S>(f<S>(dx), f<S>(dout), n, p, rng.seed, rng.offset, stream);
    });
#endif
    return k;
  }

 private:
  std::size_t n_;
  float p_;
  DType dtype_;
};

}  // namespace

OpPtr make_gelu(std::size_t n, DType dtype) { return std::make_shared<Gelu>(n, dtype); }
OpPtr make_residual(std::size_t n, DType dtype) { return std::make_shared<Residual>(n, dtype); }
OpPtr make_dropout(std::size_t n, float p, DType dtype) {
  return std::make_shared<Dropout>(n, p, dtype);
}

}  // namespace memento::nn
