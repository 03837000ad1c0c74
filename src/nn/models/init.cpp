#include <cmath>
#include <cstdint>
#include <vector>

#include "nn/kernels/cuda/kernels_cuda.hpp"  // to_bf16: constexpr host code, no CUDA needed
#include "nn/kernels/dropout_rng.hpp"
#include "nn/models/model.hpp"

namespace memento::nn {

void init_normal(std::vector<float>& out, std::uint64_t seed, float stddev) {
  // Box-Muller over a counter-based stream: the same numbers on every machine.
  constexpr double kTwoPi = 6.283185307179586;
  for (std::size_t i = 0; i < out.size(); i += 2) {
    const double u1 = (static_cast<double>(mix64(seed ^ mix64(i)) >> 11) + 1.0) * 0x1.0p-53;
    const double u2 =
        static_cast<double>(mix64(seed ^ mix64(i + 1) ^ 0x5bd1e995u) >> 11) * 0x1.0p-53;
    const double r = std::sqrt(-2.0 * std::log(u1));
    out[i] = static_cast<float>(stddev * r * std::cos(kTwoPi * u2));
    if (i + 1 < out.size()) out[i + 1] = static_cast<float>(stddev * r * std::sin(kTwoPi * u2));
  }
}

void write_values(Tape& tape, TensorId id, const std::vector<float>& values, DType dtype) {
  if (dtype == DType::f32) {
    tape.write(id, values.data(), values.size() * sizeof(float));
    return;
  }
  std::vector<cuda::bf16> converted(values.size());
  for (std::size_t i = 0; i < values.size(); ++i) converted[i] = cuda::to_bf16(values[i]);
  tape.write(id, converted.data(), converted.size() * sizeof(cuda::bf16));
}

}  // namespace memento::nn
