// The runtime's tracked tensors: what each one is, where its data is, whether it can be
// evicted and how it would be recomputed. Not thread-safe: the runtime serialises access.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "memento/op.hpp"
#include "memento/residency.hpp"

namespace memento {

/// How to recompute a tensor: its producer, the producer's inputs and the RNG state it used.
struct Recipe {
  std::shared_ptr<const Op> op;
  std::vector<TensorId> inputs;
  RngState rng;
};

/// What a tensor is when it is registered.
struct TensorDesc {
  std::size_t bytes = 0;
  std::vector<std::int64_t> shape;
  bool evictable = true;         ///< false for inputs, parameters and gradients
  std::optional<Recipe> recipe;  ///< set: the tensor may be discarded and recomputed
  double compute_seconds = 0;    ///< cost of rerunning the producer (modelled or measured)
};

struct TrackedTensor {
  TensorId id = 0;
  TensorDesc desc;
  Residency state = Residency::resident;
  void* device = nullptr;  ///< device block while resident, offloading or recomputed
  void* host = nullptr;    ///< pinned host copy while offloading, on host or prefetching
  int pins = 0;            ///< uses in progress: a pinned tensor is never evicted
  std::uint64_t last_access = 0;
  /// Seconds of compute expected before this tensor's next use, from the access order of
  /// the previous step (negative: unknown). Policies weigh whether a copy can be hidden.
  double next_use_seconds = -1;
  /// Compute seconds of the discarded tensors a recompute of this one would have to
  /// recompute first (its evicted neighbourhood), set by the runtime before policies score.
  double evicted_inputs_seconds = 0;
  /// Non-empty: the data is gone (a failed copy held its only bytes and there is no recipe);
  /// says why. Using the tensor raises DataLost; freeing it is fine.
  std::string lost;
};

class TensorRegistry {
 public:
  /// Registers a resident tensor. LogicError for zero bytes or a recipe naming a tensor
  /// that is not registered.
  TensorId add(TensorDesc desc, void* device);

  [[nodiscard]] bool contains(TensorId id) const noexcept;
  /// LogicError for unknown ids.
  [[nodiscard]] TrackedTensor& at(TensorId id);
  [[nodiscard]] const TrackedTensor& at(TensorId id) const;

  /// Forgets a tensor. LogicError while it is pinned or needed by another's recipe.
  void erase(TensorId id);

  /// Drops the tensor's recipe (a no-op without one): it can no longer be discarded, and
  /// its recipe's inputs lose that use. LogicError while it is discarded or recomputing
  /// (its data would then be lost).
  void forget_recipe(TensorId id);

  /// Moves a tensor to another residency state. LogicError for an illegal transition
  /// (see residency.hpp), for evicting a pinned or non-evictable tensor, and for
  /// discarding one without a recipe.
  void move(TensorId id, Residency to);

  void pin(TensorId id);
  /// LogicError when the tensor is not pinned.
  void unpin(TensorId id);

  /// Records a use on the logical clock; returns the new time.
  std::uint64_t touch(TensorId id);
  [[nodiscard]] std::uint64_t clock() const noexcept { return clock_; }
  /// The id the next add() will return (ids only grow).
  [[nodiscard]] TensorId next_id() const noexcept { return next_id_; }

  /// Resident (or being copied back ahead of use), unpinned, evictable tensors: what a
  /// policy may choose victims from.
  [[nodiscard]] std::vector<const TrackedTensor*> eviction_candidates() const;
  /// Bytes of the tensors currently in `state`.
  [[nodiscard]] std::size_t bytes_in(Residency state) const noexcept;
  /// Bytes of the tensors holding device memory (resident or being copied back), kept as
  /// they move: what the step observer subtracts from the allocator's bytes.
  [[nodiscard]] std::size_t device_bytes() const noexcept { return device_bytes_; }
  [[nodiscard]] std::size_t size() const noexcept { return tensors_.size(); }
  /// Every registered tensor, in no particular order.
  [[nodiscard]] std::vector<TrackedTensor*> all();
  /// How many recipes of registered tensors name `id` as an input.
  [[nodiscard]] int recipe_uses(TensorId id) const noexcept {
    auto it = recipe_uses_.find(id);
    return it == recipe_uses_.end() ? 0 : it->second;
  }

 private:
  std::unordered_map<TensorId, TrackedTensor> tensors_;
  std::unordered_map<TensorId, int> recipe_uses_;  // how many recipes name each tensor
  std::size_t device_bytes_ = 0;
  TensorId next_id_ = 1;
  std::uint64_t clock_ = 0;
};

}  // namespace memento
