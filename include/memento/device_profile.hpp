// Datasheet models of real GPUs for the sim backend.
#pragma once

#include <cstddef>
#include <span>
#include <string>
#include <string_view>

namespace memento {

/// What the sim backend needs to know about a GPU. Rates are per second.
struct DeviceProfile {
  std::string name;           ///< e.g. "h100-sxm"
  std::string description;    ///< e.g. "NVIDIA H100 SXM5 80GB"
  std::size_t capacity = 0;   ///< device memory, bytes
  double matrix_flops = 0;    ///< dense bf16 tensor-core FLOP/s
  double vector_flops = 0;    ///< fp32 (non-tensor) FLOP/s
  double hbm_bandwidth = 0;   ///< device memory bytes/s
  double h2d_bandwidth = 0;   ///< host-to-device bytes/s achievable with pinned memory
  double d2h_bandwidth = 0;   ///< device-to-host bytes/s achievable with pinned memory
  double launch_latency = 0;  ///< seconds of host time per kernel launch or copy issue
};

/// Every built-in profile.
[[nodiscard]] std::span<const DeviceProfile> device_profiles() noexcept;

/// The profile with this name; ConfigError listing the known names otherwise.
[[nodiscard]] const DeviceProfile& find_device_profile(std::string_view name);

}  // namespace memento
