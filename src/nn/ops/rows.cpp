// Row slices: a block of rows of a tensor (the head's logits computed a chunk of rows at a
// time), and the concatenation of per-chunk fp32 results. Both backwards only move gradients:
// they read no forward data, so their inputs are not kept for them.
#include <fmt/format.h>

#include <cstring>
#include <utility>

#include "nn/ops/op_util.hpp"
#include "nn/ops/ops.hpp"

namespace memento::nn {
namespace {

using detail::d;
using detail::f;

std::size_t z(int v) { return static_cast<std::size_t>(v); }

/// dst[i] += src[i], i < n (fp32 host kernels).
void accumulate_host(float* dst, const float* src, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) dst[i] += src[i];
}

class Rows final : public NnOp {
 public:
  Rows(int total, int row0, int rows, int width, DType dtype)
      : row0_(row0), rows_(rows), width_(width), dtype_(dtype) {
    MEMENTO_EXPECTS(
        width > 0 && rows > 0 && row0 >= 0 && row0 + rows <= total,
        fmt::format("rows: rows [{}, {}) of width {} are not inside a tensor of {} rows", row0,
                    row0 + rows, width, total));
  }
  std::string name() const override { return "rows"; }
  KernelCost cost(std::span<const std::size_t>, std::size_t) const override {
    return {0, 2 * d(n()) * d(dtype_bytes(dtype_)), false};
  }
  Kernel make_kernel(std::span<const Storage> in, Storage out, const RngState&) const override {
    Kernel k =
        detail::kernel("rows", cost({}, 0), dtype_, [x = in[0], out, off = offset(), n = n()] {
          std::memcpy(out.data, f(x) + off, n * sizeof(float));
        });
#if MEMENTO_HAS_CUDA
    detail::set_cuda(k, dtype_, [x = in[0], out, off = offset(), n = n()](auto as, void* stream) {
      using S = typename decltype(as)::type;
      cuda::copy<S>(f<S>(out), f<S>(x) + off, n, stream);
    });
#endif
    return k;
  }
  std::vector<bool> grad_inputs() const override { return {true}; }
  bool backward_reads_input(std::size_t) const override { return false; }
  Kernel make_backward(std::span<const Storage>, Storage, Storage dout,
                       std::span<const Storage> din, const RngState&) const override {
    // Reads dout and din's rows, writes din's rows.
    const KernelCost c{d(n()), 3 * d(n()) * d(dtype_bytes(dtype_)), false};
    Kernel k = detail::kernel(
        "rows backward", c, dtype_,
        [dx = din[0], dout, off = offset(), n = n()] { accumulate_host(f(dx) + off, f(dout), n); });
#if MEMENTO_HAS_CUDA
    detail::set_cuda(k, dtype_,
                     [dx = din[0], dout, off = offset(), n = n()](auto as, void* stream) {
                       using S = typename decltype(as)::type;
                       cuda::accumulate<S>(f<S>(dx) + off, f<S>(dout), n, stream);
                     });
#endif
    return k;
  }

 private:
  std::size_t n() const { return z(rows_) * z(width_); }
  std::size_t offset() const { return z(row0_) * z(width_); }

  int row0_, rows_, width_;
  DType dtype_;
};

class ConcatRows final : public NnOp {
 public:
  ConcatRows(std::vector<int> rows, int width) : rows_(std::move(rows)), width_(width) {
    MEMENTO_EXPECTS(!rows_.empty() && width > 0,
                    "concat_rows: needs at least one input and a positive width");
    for (int r : rows_) MEMENTO_EXPECTS(r > 0, fmt::format("concat_rows: an input of {} rows", r));
  }
  std::string name() const override { return "concat rows"; }
  KernelCost cost(std::span<const std::size_t>, std::size_t) const override {
    return {0, 2 * d(total()) * 4, false};
  }
  Kernel make_kernel(std::span<const Storage> in, Storage out, const RngState&) const override {
    std::vector<Storage> ins = detail::copy(in);
    Kernel k = detail::kernel("concat rows", cost({}, 0), DType::f32, [ins, out, sizes = sizes()] {
      std::size_t at = 0;
      for (std::size_t i = 0; i < ins.size(); ++i) {
        std::memcpy(f(out) + at, ins[i].data, sizes[i] * sizeof(float));
        at += sizes[i];
      }
    });
#if MEMENTO_HAS_CUDA
    detail::set_cuda(k, DType::f32, [ins, out, sizes = sizes()](auto, void* stream) {
      std::size_t at = 0;
      for (std::size_t i = 0; i < ins.size(); ++i) {
        cuda::copy<float>(f(out) + at, f(ins[i]), sizes[i], stream);
        at += sizes[i];
      }
    });
#endif
    return k;
  }
  std::vector<bool> grad_inputs() const override { return std::vector<bool>(rows_.size(), true); }
  bool backward_reads_input(std::size_t) const override { return false; }
  Kernel make_backward(std::span<const Storage>, Storage, Storage dout,
                       std::span<const Storage> din, const RngState&) const override {
    std::vector<Storage> dins = detail::copy(din);
    const KernelCost c{d(total()), 3 * d(total()) * 4, false};
    Kernel k = detail::kernel("concat rows backward", c, DType::f32, [dins, dout, sizes = sizes()] {
      std::size_t at = 0;
      for (std::size_t i = 0; i < dins.size(); ++i) {
        accumulate_host(f(dins[i]), f(dout) + at, sizes[i]);
        at += sizes[i];
      }
    });
#if MEMENTO_HAS_CUDA
    detail::set_cuda(k, DType::f32, [dins, dout, sizes = sizes()](auto, void* stream) {
      std::size_t at = 0;
      for (std::size_t i = 0; i < dins.size(); ++i) {
        cuda::accumulate<float>(f(dins[i]), f(dout) + at, sizes[i], stream);
        at += sizes[i];
      }
    });
#endif
    return k;
  }

 private:
  /// Elements of each input.
  std::vector<std::size_t> sizes() const {
    std::vector<std::size_t> s;
    for (int r : rows_) s.push_back(z(r) * z(width_));
    return s;
  }
  std::size_t total() const {
    std::size_t rows = 0;
    for (int r : rows_) rows += z(r);
    return rows * z(width_);
  }

  std::vector<int> rows_;
  int width_;
};

}  // namespace

OpPtr make_rows(int total_rows, int row0, int rows, int width, DType dtype) {
  return std::make_shared<Rows>(total_rows, row0, rows, width, dtype);
}

OpPtr make_concat_rows(std::vector<int> rows, int width) {
  return std::make_shared<ConcatRows>(std::move(rows), width);
}

}  // namespace memento::nn
