// Where a tracked tensor's data is, and the moves between those places the runtime makes.
#pragma once

#include <cstdint>

namespace memento {

using TensorId = std::uint64_t;  ///< 0 is never a valid id

enum class Residency : std::uint8_t {
  resident,     ///< in device memory
  offloading,   ///< device-to-host copy in flight; the device copy is still valid
  on_host,      ///< only in pinned host memory
  prefetching,  ///< host-to-device copy in flight
  discarded,    ///< nowhere: recomputed from its recipe on use
  recomputing,  ///< its producer is being rerun
};

[[nodiscard]] const char* to_string(Residency state) noexcept;

/// Whether the runtime may move a tensor from `from` to `to`:
///   resident    -> offloading (offload issued), discarded (evicted by discard)
///   offloading  -> on_host (copy done), resident (used mid-copy: the offload is cancelled)
///   on_host     -> prefetching (copy back issued), discarded (host copy dropped)
///   prefetching -> resident (copy done)
///   discarded   -> recomputing (producer rerun issued)
///   recomputing -> resident (rerun done)
[[nodiscard]] bool is_legal_transition(Residency from, Residency to) noexcept;

/// Throws LogicError naming the tensor and both states when the move is not legal.
void check_transition(TensorId id, Residency from, Residency to);

}  // namespace memento
