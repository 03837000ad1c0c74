// What the training loop needs of a model: parameters on a tape, and a forward pass over a
// batch it generates itself (deterministically from the step number), ending in per-token
// losses.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "nn/planning.hpp"
#include "nn/tape.hpp"

namespace memento::nn {

class Model {
 public:
  virtual ~Model() = default;
  [[nodiscard]] virtual std::string name() const = 0;
  /// Puts the batch of `step` on the tape and runs the forward; returns the fp32 losses.
  virtual TensorId forward(Tape& tape, std::uint64_t step) = 0;
  /// How many losses forward() returns (the gradient of their mean is backpropagated).
  [[nodiscard]] virtual std::size_t loss_count() const = 0;
  /// Parameter count.
  [[nodiscard]] virtual std::size_t parameter_count() const = 0;
  /// The model as a chain of blocks, for the static planners (fixed_bytes: the parameters
  /// and what lies outside the blocks; the trainer's gradients and AdamW state are not
  /// included).
  [[nodiscard]] virtual ChainShape chain_shape() const = 0;
};

/// A deterministic normal(0, stddev) initialiser: the same values on every backend.
void init_normal(std::vector<float>& out, std::uint64_t seed, float stddev);

/// Writes fp32 host `values` into a tensor stored in `dtype` (Tape::write): as they are for
/// fp32; for bf16 rounded on the host to nearest even first (the bits the device's
/// __float2bfloat16_rn gives), so the tensor holds values.size() * 2 bytes.
void write_values(Tape& tape, TensorId id, const std::vector<float>& values, DType dtype);

}  // namespace memento::nn
