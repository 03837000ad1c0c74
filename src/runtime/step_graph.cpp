#include "runtime/step_graph.hpp"

namespace memento {

bool StepGraph::same_program(const StepGraph& other) const {
  if (tensors.size() != other.tensors.size()) return false;
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    const GraphTensor& a = tensors[i];
    const GraphTensor& b = other.tensors[i];
    if (!a.same_tensor(b) || a.uses.size() != b.uses.size()) return false;
  }
  return true;
}

}  // namespace memento
