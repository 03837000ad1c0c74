// What measure_device and fit_profile share: running a model's training steps through a
// TimingBackend, turning samples into a table of measured kernels, fitting rates to it.
#pragma once

#include <cstdint>
#include <filesystem>
#include <vector>

#include "calibrate/timing_backend.hpp"
#include "memento/device_profile.hpp"
#include "nn/models/gpt2.hpp"

namespace memento::calibrate {

/// How a kernel's time is taken.
enum class KernelTiming {
  /// The runtime's own device spans (its trace: the body's time on the host worker, cuda
  /// events on cuda), kernels queued back to back as in training.
  stream,
  /// Each launch waits for its stream to drain and is synchronized after (as
  /// CUDA_LAUNCH_BLOCKING=1 does): launch to completion, round trip included.
  blocking,
};

struct TimedTraining {
  std::vector<KernelSample> kernels;  ///< of every step after the first
  double launch_latency = 0;          ///< median host issue time of a launch
  double kernel_gap = 0;              ///< mean_kernel_gap of the spans (0: blocking)
};

/// Trains `model` for `steps` steps (no budget, AdamW on the device) on `backend` through a
/// TimingBackend and returns the kernels of every step after the first, timed as `timing`
/// says.
[[nodiscard]] TimedTraining time_training(Backend& backend, const nn::Gpt2Config& model, int steps,
                                          std::uint64_t seed, KernelTiming timing);

/// The mean gap between each device span's end and the next one's start (spans sorted by
/// start; overlapping ones give no gap), over the shortest nine tenths of the gaps (the rest
/// are waits): what kernels of a stream lose between them to the hand-over and to the host's
/// issue. 0 with fewer than two spans.
[[nodiscard]] double mean_kernel_gap(std::vector<KernelSample> spans);

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
