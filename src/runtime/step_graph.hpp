// What the runtime observed of one step: every tensor the step created, in creation order
// (the key that is the same every step of the same program), with its bytes, producer
// time, inputs, uses and free, and the memory outside these tensors at each of those
// moments. Memory is linear in the step's tensors and uses.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace memento {

inline constexpr std::size_t kNoPoint = static_cast<std::size_t>(-1);

struct GraphTensor {
  std::size_t bytes = 0;
  double seconds = 0;   ///< modelled time of its producer (what a recompute costs)
  bool recipe = false;  ///< can be discarded and recomputed
  bool evictable = true;
  std::vector<std::size_t> inputs;  ///< the recipe's inputs made in this step, by ordinal
  std::size_t created = 0;          ///< point of its creation
  std::size_t freed = kNoPoint;     ///< point where the program freed it (none: the end)
  std::vector<std::size_t> uses;    ///< points of its uses, in order
  int region = -1;                  ///< the program's mark (a block), -1 unmarked
  std::string role;

  /// The same tensor of the same program: bytes, recipe, inputs and evictability.
  [[nodiscard]] bool same_tensor(const GraphTensor& o) const {
    return bytes == o.bytes && recipe == o.recipe && evictable == o.evictable && inputs == o.inputs;
  }
};

struct GraphPoint {
  double seconds = 0;      ///< program compute before this moment (recompute excluded)
  double other_bytes = 0;  ///< device bytes not held by this step's tensors
};

struct StepGraph {
  std::vector<GraphTensor> tensors;  ///< by creation ordinal
  std::vector<GraphPoint> points;    ///< creations, uses and frees in program order

  /// The same program: the same tensors (bytes, recipe, inputs) used the same number of
  /// times. A plan made on one applies to the other.
  [[nodiscard]] bool same_program(const StepGraph& other) const;
  /// Total modelled compute of the step.
  [[nodiscard]] double seconds() const { return points.empty() ? 0 : points.back().seconds; }
  void clear() {
    tensors.clear();
    points.clear();
  }
};

}  // namespace memento
