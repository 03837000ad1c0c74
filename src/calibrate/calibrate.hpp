// `memento calibrate`: measure on a real backend (host or cuda) what the sim needs, and
// fit a profile from recorded runs (a compare results.json and its Chrome trace) without
// the device. Both produce a DeviceProfile that `--device sim:PROFILE.json` uses.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "calibrate/kernel_table.hpp"
#include "memento/backend.hpp"
#include "memento/device_profile.hpp"
#include "nn/models/gpt2.hpp"

namespace memento::calibrate {

using Progress = std::function<void(std::string_view)>;

struct CalibrateOptions {
  nn::Gpt2Config model;  ///< the workload whose kernels are measured
  int steps = 4;         ///< training steps timed; the first (start-up) is not used
  std::uint64_t seed = 1234;
  std::size_t copy_bytes = std::size_t{64} << 20;  ///< link and memory-copy probes
  int repeats = 5;                                 ///< probes are medians of this many
  KernelTiming timing = KernelTiming::stream;      ///< how each kernel's time is taken
  Progress progress;                               ///< one line per phase; may be empty
};

/// Measures `backend` (a real one: kernels must execute) and returns its profile:
/// - every distinct kernel of `options.model`'s training step (forward, backward,
///   optimizer), median over the steps after the first: by default its device span in the
///   runtime's trace with kernels queued as in training; with KernelTiming::blocking
///   launched one at a time, less the round trip of an empty kernel;
/// - rates fitted to those kernels (matrix, vector, memory) and per-name efficiencies for
///   kernels of other shapes;
/// - launch latency (host issue time), segment allocate/free time, host-link bandwidth each
///   way, whether copies overlap kernels, and the host CPU's AdamW update bandwidth.
[[nodiscard]] DeviceProfile measure_device(Backend& backend, const CalibrateOptions& options);

/// A profile fitted from recorded runs on a device without that device: `results` is a
/// `memento compare` results.json (its assumptions name the model and what the backend
/// stated to the cost model), `trace` a Chrome trace of the same model:
/// - with device spans (category "kernel": compare --out and train --trace write them), each
///   kernel of the steps after the first at its median device time, unscaled;
/// - else recorded with blocking launches (each forward op's span is its device time plus a
///   fixed per-op host overhead, estimated from the smallest ops and taken off), scaled to
///   the results' unlimited step and every-layer overhead. Kernels the trace lacks
///   (backward, optimizer) take the efficiency of their forward op, or their class's.
/// `base` is the datasheet profile of the same device.
[[nodiscard]] DeviceProfile fit_profile(const std::filesystem::path& results,
                                        const std::filesystem::path& trace,
                                        const DeviceProfile& base, const Progress& progress = {});

/// The GPT-2 workload a results.json's assumptions describe. ConfigError naming the field.
[[nodiscard]] nn::Gpt2Config workload_of(const std::filesystem::path& results);

}  // namespace memento::calibrate
