// A kernel as the backends see it: a name, a cost model, and one implementation per real
// device. The sim backend never runs code; it advances a virtual clock by the cost.
#pragma once

#include <functional>
#include <string>

namespace memento {

/// What a kernel costs, from the op's formula. The sim backend turns it into time with a
/// roofline: max(flops / throughput, bytes / memory bandwidth).
struct KernelCost {
  double flops = 0;           ///< floating-point operations
  double bytes = 0;           ///< bytes read plus written in device memory
  bool tensor_cores = false;  ///< a matrix product eligible for the tensor-core rate
};

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
