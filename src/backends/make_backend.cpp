#include <string>

#include "memento/backends.hpp"
#include "memento/error.hpp"

namespace memento {

std::unique_ptr<Backend> make_backend(const DeviceSpec& spec) {
  switch (spec.kind) {
    case BackendKind::host: {
      HostBackendOptions options;
      if (spec.host_capacity != 0) options.capacity = spec.host_capacity;
      return make_host_backend(options);
    }
    case BackendKind::sim:
      return make_sim_backend(find_device_profile(spec.profile));
    case BackendKind::cuda:
      return make_cuda_backend(spec.index);
  }
  MEMENTO_FAIL(LogicError,
               "make_backend: unknown backend kind " + std::to_string(static_cast<int>(spec.kind)));
}

}  // namespace memento
