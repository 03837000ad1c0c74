#include "memento/backend.hpp"

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

}  // namespace memento
