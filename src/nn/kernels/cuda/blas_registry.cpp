#include "nn/kernels/cuda/blas_registry.hpp"

#include <cuda_runtime_api.h>

#include <map>
#include <memory>
#include <mutex>
#include <utility>

#include "common/cuda_try.hpp"

namespace memento::nn::cuda {
namespace {

// Keyed by (device, stream): the legacy default stream (nullptr) is one per device.
using Key = std::pair<int, void*>;

struct Registry {
  std::mutex mutex;
  std::map<Key, std::unique_ptr<Blas>> blas;
};

Registry& registry() {
  // Never destroyed: see blas_for().
  static Registry* r = new Registry;
  return *r;
}

Key key_of(void* stream) {
  int device = 0;
  MEMENTO_CUDA_TRY(cudaGetDevice(&device));
  return {device, stream};
}

}  // namespace

Blas& blas_for(void* stream) {
  const Key key = key_of(stream);
  Registry& r = registry();
  std::lock_guard<std::mutex> lock(r.mutex);
  auto it = r.blas.find(key);
  if (it == r.blas.end()) it = r.blas.emplace(key, std::make_unique<Blas>(stream)).first;
  return *it->second;
}

void release_blas(void* stream) {
  const Key key = key_of(stream);
  std::unique_ptr<Blas> dead;
  Registry& r = registry();
  {
    std::lock_guard<std::mutex> lock(r.mutex);
    auto it = r.blas.find(key);
    if (it == r.blas.end()) return;
    dead = std::move(it->second);
    r.blas.erase(it);
  }
  // Destroyed outside the lock: cublasDestroy synchronises the device.
}

std::size_t reset_blas_registry() {
  std::map<Key, std::unique_ptr<Blas>> dead;
  Registry& r = registry();
  {
    std::lock_guard<std::mutex> lock(r.mutex);
    dead.swap(r.blas);
  }
  // Each on its own device (a handle and its workspace belong to the device it was made on).
  int current = 0;
  MEMENTO_CUDA_TRY(cudaGetDevice(&current));
  const std::size_t count = dead.size();
  for (auto& [key, blas] : dead) {
    if (MEMENTO_CUDA_LOG(cudaSetDevice(key.first))) blas.reset();
  }
  (void)MEMENTO_CUDA_LOG(cudaSetDevice(current));
  return count;
}

}  // namespace memento::nn::cuda
