// What the sim backend reports of a device profile, and the checks a profile passes first.
#pragma once

#include "memento/backend.hpp"
#include "memento/device_profile.hpp"

namespace memento::sim {

/// The DeviceInfo of a sim of `profile`: a model (no kernels run, no data held), stating
/// the rates the measured device's backend stated where the profile records them, else the
/// profile's figures.
[[nodiscard]] DeviceInfo sim_info(const DeviceProfile& profile);

/// `profile` when every figure is usable; else a ConfigError naming the figure, its value
/// and what is accepted.
const DeviceProfile& checked_profile(const DeviceProfile& profile);

}  // namespace memento::sim
