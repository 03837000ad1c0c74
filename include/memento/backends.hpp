// Constructing backends.
#pragma once

#include <cstddef>
#include <memory>

#include "memento/backend.hpp"
#include "memento/device_profile.hpp"
#include "memento/device_spec.hpp"

namespace memento {

/// Host backend options.
struct HostBackendOptions {
  std::size_t capacity = std::size_t{4} << 30;  ///< "device" memory cap, bytes
  double link_bandwidth = 0;  ///< bytes/s for host<->device copies; 0 = memcpy speed
};

[[nodiscard]] std::unique_ptr<Backend> make_host_backend(HostBackendOptions options = {});
[[nodiscard]] std::unique_ptr<Backend> make_sim_backend(const DeviceProfile& profile);
/// Throws BackendError when memento was built without CUDA or no such GPU exists.
[[nodiscard]] std::unique_ptr<Backend> make_cuda_backend(int device);
/// True when built with the cuda backend.
[[nodiscard]] bool cuda_backend_compiled() noexcept;
/// Number of CUDA devices visible (0 without CUDA support or without a GPU).
[[nodiscard]] int cuda_device_count() noexcept;

/// The backend a DeviceSpec names.
[[nodiscard]] std::unique_ptr<Backend> make_backend(const DeviceSpec& spec);

}  // namespace memento
