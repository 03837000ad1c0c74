// What the nn layer adds to the runtime's Op: a backward. An NnOp's forward is the runtime
// Op (so a discarded output is recomputed by rerunning it); its backward accumulates the
// gradients of its inputs from the gradient of its output.
#pragma once

#include <cstddef>
#include <span>
#include <vector>

#include "memento/op.hpp"

namespace memento::nn {

/// Storage types of activations. Parameters' gradients and optimizer state are always fp32.
enum class DType : std::uint8_t { f32, bf16 };

[[nodiscard]] constexpr std::size_t dtype_bytes(DType d) noexcept {
  return d == DType::f32 ? 4 : 2;
}
[[nodiscard]] const char* to_string(DType d) noexcept;

class NnOp : public Op {
 public:
  /// For each input, whether backward() writes its gradient (false: the input is an index
  /// tensor, or its gradient flows through another op's backward).
  [[nodiscard]] virtual std::vector<bool> grad_inputs() const = 0;
  /// Whether backward() reads the forward output (the tape then keeps it and brings it back).
  [[nodiscard]] virtual bool backward_reads_output() const { return false; }
  /// Whether backward() reads forward input i (default: all): an input no backward reads is
  /// freed as soon as the forward is done with it, and never brought back.
  [[nodiscard]] virtual bool backward_reads_input(std::size_t i) const {
    (void)i;
    return true;
  }

  /// The kernel that ACCUMULATES (+=) into `dinputs[i]` (for every i with grad_inputs()[i];
  /// others have no data) the gradient of input i, from the forward `inputs`, the forward
  /// `output` (data only when backward_reads_output()) and `dout`.
  [[nodiscard]] virtual Kernel make_backward(std::span<const Storage> inputs, Storage output,
                                             Storage dout, std::span<const Storage> dinputs,
                                             const RngState& rng) const = 0;
};

/// A kernel that sets `bytes` of device memory to zero on whatever backend runs it.
[[nodiscard]] Kernel zero_kernel(Storage s);
/// A kernel that sets `s` (fp32) to `value` everywhere.
[[nodiscard]] Kernel fill_kernel(Storage s, float value);

}  // namespace memento::nn
