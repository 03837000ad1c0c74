// A deep MLP chain: `layers` blocks of linear + GELU at a fixed width, then a classifier
// with a cross-entropy loss: the textbook case for √L checkpointing (every block's
// activations are the same size, and recomputing a block is as cheap as running it).
#pragma once

#include <memory>

#include "nn/models/model.hpp"

namespace memento::nn {

struct MlpConfig {
  int layers = 8;
  int width = 256;
  int batch = 64;
  int classes = 10;
  DType dtype = DType::f32;
};

/// The batch of each step is random inputs labelled by a fixed random linear teacher.
std::unique_ptr<Model> make_mlp(const MlpConfig& config, Tape& tape, std::uint64_t seed);

}  // namespace memento::nn
