// Stands in for the cuda backend when memento is built without the CUDA toolkit, so that
// asking for "cuda" fails with an explanation instead of a link error.
#include "memento/backends.hpp"
#include "memento/error.hpp"

namespace memento {

std::unique_ptr<Backend> make_cuda_backend(int /*device*/) {
  MEMENTO_FAIL(BackendError,
               "memento was built without the cuda backend (configure with -DMEMENTO_CUDA=ON and "
               "the CUDA toolkit)");
}

bool cuda_backend_compiled() noexcept { return false; }

int cuda_device_count() noexcept { return 0; }

}  // namespace memento
