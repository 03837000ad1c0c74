// What measure_device and fit_profile share: running a model's training steps through a
// TimingBackend, turning samples into a table of measured kernels, fitting rates to it.
#pragma once

#include <cstdint>
#include <vector>

#include "calibrate/timing_backend.hpp"
#include "memento/device_profile.hpp"
#include "nn/models/gpt2.hpp"

namespace memento::calibrate {

/// Trains `model` for `steps` steps (no budget, AdamW on the device) on `backend` through a
/// TimingBackend and returns the samples of every step after the first.
[[nodiscard]] std::vector<KernelSample> time_training(Backend& backend, const nn::Gpt2Config& model,
                                                      int steps, std::uint64_t seed, bool blocking);

/// One entry per distinct (name, flops, bytes): the median of its samples' seconds less
/// `overhead` (not below zero), in first-launch order.
[[nodiscard]] std::vector<MeasuredKernel> median_kernels(const std::vector<KernelSample>& samples,
                                                         double overhead);

/// Fits `profile`'s matrix and vector rates to its measured kernels (the kernels a rate bounds:
/// compute-bound ones at the current rates and memory bandwidth) and sets an efficiency per
/// kernel name relative to the fitted roofline, so that kernels of other shapes land near
/// their kind's measured speed. Rates with no kernel to fit keep their value.
void fit_rates(DeviceProfile& profile);

/// The median of `values` (0 when empty).
[[nodiscard]] double median(std::vector<double> values);

}  // namespace memento::calibrate
