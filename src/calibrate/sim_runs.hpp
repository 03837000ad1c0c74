// Training steps of a GPT-2 model on the sim backend under a static plan: what fit_profile
// checks a profile against recorded runs with.
#pragma once

#include <cstddef>
#include <string_view>

#include "memento/device_profile.hpp"
#include "nn/models/gpt2.hpp"

namespace memento::calibrate {

struct SimRun {
  double step_seconds = 0;  ///< median of the steps after the first
  std::size_t peak_reserved = 0;
};

/// `steps` steps of `model` (AdamW on the device, policy auto for what the plan leaves)
/// on a sim backend of `profile` (capacity made unbounded) with the static plan `plan`
/// ("none", "every-layer", "selective", ...) for `budget` bytes (0: none).
[[nodiscard]] SimRun sim_run(const DeviceProfile& profile, const nn::Gpt2Config& model,
                             std::string_view plan, std::size_t budget, int steps = 3);

}  // namespace memento::calibrate
