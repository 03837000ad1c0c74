// What the runtime needs of an operator to rerun it: its kernel on given storage, and its
// cost. The nn layer implements it for real ops; tests use small ops of their own.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "memento/kernel.hpp"

namespace memento {

/// Device memory of one tensor.
struct Storage {
  void* data = nullptr;
  std::size_t bytes = 0;
};

/// The random-number state an op consumed, recorded so a recompute draws the same numbers.
struct RngState {
  std::uint64_t seed = 0;
  std::uint64_t offset = 0;
};

class Op {
 public:
  virtual ~Op() = default;

  [[nodiscard]] virtual std::string name() const = 0;

  /// FLOPs and bytes moved for inputs and an output of these sizes.
  [[nodiscard]] virtual KernelCost cost(std::span<const std::size_t> input_bytes,
                                        std::size_t output_bytes) const = 0;

  /// The kernel that computes `output` from `inputs`. Given the same inputs and `rng` it must
  /// write the same bytes every time: recomputed activations are bit-identical.
  [[nodiscard]] virtual Kernel make_kernel(std::span<const Storage> inputs, Storage output,
                                           const RngState& rng) const = 0;
};

}  // namespace memento
