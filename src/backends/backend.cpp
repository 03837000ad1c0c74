#include "memento/backend.hpp"

#include <fmt/format.h>

#include <cmath>

#include "memento/error.hpp"

namespace memento {

const char* to_string(BackendKind kind) noexcept {
  switch (kind) {
    case BackendKind::host:
      return "host";
    case BackendKind::sim:
      return "sim";
    case BackendKind::cuda:
      return "cuda";
  }
  return "unknown";  // only reachable through a cast of an out-of-range value
}

const char* to_string(CopyKind kind) noexcept {
  switch (kind) {
    case CopyKind::host_to_device:
      return "host_to_device";
    case CopyKind::device_to_host:
      return "device_to_host";
    case CopyKind::device_to_device:
      return "device_to_device";
    case CopyKind::host_to_host:
      return "host_to_host";
  }
  return "unknown";
}

void check_host_task(const HostTask& task, bool needs_fn) {
  MEMENTO_EXPECTS(std::isfinite(task.seconds) && task.seconds >= 0,
                  fmt::format("launch_host '{}': {} seconds; accepted: finite and >= 0", task.name,
                              task.seconds),
                  LogicError);
  if (needs_fn)
    MEMENTO_EXPECTS(static_cast<bool>(task.fn),
                    fmt::format("host task {} has no function to run", task.name));
}

}  // namespace memento
