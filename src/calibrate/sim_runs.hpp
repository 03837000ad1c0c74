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
  double recompute_flops = 0;  ///< of the last step
  std::size_t recomputes = 0;  ///< of the last step
};

struct SimRunOptions {
  std::string_view plan = "none";  ///< "none", "every-layer", "selective", ...
  std::size_t budget = 0;          ///< bytes; 0: none
  std::string_view policy = "auto";
  int steps = 3;
  /// The runtime's cost model prices every kernel and memory byte at 1e12 per second, as it
  /// did on a backend that states no rates (cuda before it reported its datasheet's). The
  /// link keeps the profile's rate (cuda stated none then, so it never offloaded).
  bool uniform_rates = false;
};

/// `options.steps` steps of `model` (AdamW on the device, `options.policy` for what the plan
/// leaves) on a sim backend of `profile` (capacity made unbounded) with the static plan and
/// budget of `options`.
[[nodiscard]] SimRun sim_run(const DeviceProfile& profile, const nn::Gpt2Config& model,
                             const SimRunOptions& options);
[[nodiscard]] inline SimRun sim_run(const DeviceProfile& profile, const nn::Gpt2Config& model,
                                    std::string_view plan, std::size_t budget) {
  return sim_run(profile, model, SimRunOptions{.plan = plan, .budget = budget});
}

}  // namespace memento::calibrate
