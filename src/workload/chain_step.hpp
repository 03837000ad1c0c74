// One training-like step of a chain, for runtime tests and benchmarks: a forward chain of
// `layers` ops whose activations are all kept, then a backward pass that uses them newest
// first, each with a gradient op, freeing each activation after its backward use (as
// autograd does).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "memento/runtime.hpp"

namespace memento::workload {

inline StepStats chain_step(Runtime& rt, const std::shared_ptr<const Op>& op, int layers,
                            std::size_t bytes) {
  rt.begin_step();
  std::vector<TensorId> acts{rt.constant(bytes)};
  for (int i = 0; i < layers; ++i)
    acts.push_back(rt.compute(op, {acts.back()}, bytes, {7, std::uint64_t(i)}));
  TensorId grad = rt.compute(op, {acts.back()}, bytes, {8, 0});
  for (auto it = acts.rbegin(); it != acts.rend(); ++it) {
    TensorId next = rt.compute(op, {grad, *it}, bytes, {9, *it});
    rt.free(grad);
    rt.free(*it);
    grad = next;
  }
  rt.free(grad);
  return rt.end_step();
}

}  // namespace memento::workload
