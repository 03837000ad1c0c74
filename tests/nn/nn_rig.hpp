// A runtime, a tape and (once set) a model on one backend, for the nn tests.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "memento/backends.hpp"
#include "memento/pinned_host_pool.hpp"
#include "memento/runtime.hpp"
#include "nn/models/model.hpp"
#include "nn/tape.hpp"

namespace memento::nn::testing {

inline constexpr std::size_t kMiB = std::size_t{1} << 20;

/// Members in teardown order: the model before the tape, the runtime before the allocator.
struct Rig {
  std::unique_ptr<Backend> backend;
  CachingAllocator alloc;
  PinnedHostPool pool;
  Runtime rt;
  Tape tape;
  std::unique_ptr<Model> model;
  /// `budget` 0: none.
  Rig(std::unique_ptr<Backend> b, std::size_t budget, const std::string& policy,
      RuntimeOptions options = {})
      : backend(std::move(b)),
        alloc(*backend, {.budget = budget}),
        pool(*backend, 256 * kMiB),
        rt(*backend, alloc, &pool, make_policy(policy), std::move(options)),
        tape(rt, alloc, *backend) {}
};

/// The parameters' fp32 gradients, copied to the host (any backend but sim).
inline std::vector<std::vector<unsigned char>> gradients(Rig& s) {
  std::vector<std::vector<unsigned char>> out;
  s.backend->synchronize_all();
  const Stream stream = s.rt.compute_stream();
  for (TensorId p : s.tape.parameters()) {
    void* g = s.tape.grad(p);
    const std::size_t n = s.alloc.requested_size(g);
    out.emplace_back(n);
    s.backend->copy_async(out.back().data(), g, n, CopyKind::device_to_host, stream);
  }
  s.backend->synchronize(stream);
  return out;
}

inline std::unique_ptr<Backend> host_backend() {
  return make_host_backend({.capacity = 2048 * kMiB});
}

}  // namespace memento::nn::testing
