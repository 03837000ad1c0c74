// A kernel as the backends see it: a name, a cost model, and one implementation per real
// device. The sim backend never runs code; it advances a virtual clock by the cost.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

namespace memento {

/// What a kernel costs, from the op's formula. The sim backend turns it into time with a
/// roofline: max(flops / throughput, bytes / memory bandwidth).
struct KernelCost {
  KernelCost() = default;
  /// The usual, roofline cost. A constructor rather than aggregate initialisation, so that
  /// `{flops, bytes, tensor_cores}` stays complete now that `seconds` follows.
  constexpr KernelCost(double f, double b, bool tc = false) noexcept
      : flops(f), bytes(b), tensor_cores(tc) {}

  double flops = 0;           ///< floating-point operations
  double bytes = 0;           ///< bytes read plus written in device memory
  bool tensor_cores = false;  ///< a matrix product eligible for the tensor-core rate
  /// A duration known from a measurement (a replayed operator log) rather than a formula:
  /// when set, the sim backend takes exactly this long and the runtime's cost model uses it
  /// instead of the roofline. Host and cuda run the real kernel and ignore it.
  std::optional<double> seconds;
};

/// Seconds a kernel of `cost` takes on the roofline: max(flops / rate, bytes /
/// memory_bandwidth), the rate being `matrix_flops` for tensor-core work, `vector_flops`
/// otherwise; a cost with an explicit `seconds` (a measured kernel) takes exactly that.
/// The one formula the sim backend advances its clock by, the runtime weighs recomputes
/// with and operator traces record.
[[nodiscard]] inline double roofline_seconds(const KernelCost& cost, double matrix_flops,
                                             double vector_flops,
                                             double memory_bandwidth) noexcept {
  if (cost.seconds) return *cost.seconds;
  const double rate = cost.tensor_cores ? matrix_flops : vector_flops;
  return std::max(cost.flops / rate, cost.bytes / memory_bandwidth);
}

/// `seconds` in whole nanoseconds, rounded to nearest: how operator traces record a
/// kernel's roofline time (and how the sim backend sums the times it modelled).
[[nodiscard]] inline std::int64_t whole_nanoseconds(double seconds) noexcept {
  return std::llround(seconds * 1e9);
}

/// One kernel launch.
struct Kernel {
  std::string name;
  KernelCost cost;
  /// Runs on the host backend's stream worker thread.
  std::function<void()> host;
  /// Runs on the cuda backend; the argument is the cudaStream_t to launch on.
  std::function<void(void* cuda_stream)> cuda;
};

}  // namespace memento
