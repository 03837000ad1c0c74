// The runtime's eviction manager (the allocator's pressure handler) and the way back:
// materialize() through recompute, waiting for offloads, and prefetch.
#include <fmt/format.h>

#include <algorithm>

#include "memento/error.hpp"
#include "memento/runtime.hpp"
#include "runtime/tensor_registry.hpp"

namespace memento {

std::size_t Runtime::on_pressure(std::size_t bytes_needed) {
  std::lock_guard lock(mutex_);
  PolicyContext ctx;
  ctx.now = registry_->clock();
  ctx.host_pool_available = host_pool_ != nullptr;
  ctx.d2h_bandwidth = options_.d2h_bandwidth;
  ctx.h2d_bandwidth = options_.h2d_bandwidth;
  std::vector<const TrackedTensor*> candidates = registry_->eviction_candidates();
  std::vector<std::pair<double, TensorId>> ranked;
  ranked.reserve(candidates.size());
  for (const TrackedTensor* c : candidates) {
    TrackedTensor& t = registry_->at(c->id);
    t.next_use_seconds = next_use_seconds(t.id);
    ranked.emplace_back(policy_->score(t, ctx), t.id);
  }
  // Highest score first; ties by id so the choice is deterministic.
  std::sort(ranked.begin(), ranked.end(), [](const auto& a, const auto& b) {
    return a.first != b.first ? a.first > b.first : a.second < b.second;
  });
  std::size_t freed = 0;
  for (const auto& [score, id] : ranked) {
    if (freed >= bytes_needed) break;
    freed += evict(id, policy_->action(registry_->at(id), ctx));
  }
  return freed;
}

std::size_t Runtime::evict(TensorId id, EvictAction action) {
  TrackedTensor& t = registry_->at(id);
  const bool can_discard = t.desc.recipe.has_value();
  void* host = nullptr;
  if (action == EvictAction::offload || !can_discard) {
    host = host_pool_ != nullptr ? host_pool_->try_allocate(t.desc.bytes) : nullptr;
    if (host == nullptr && !can_discard) return 0;  // neither way out: leave it
    if (host == nullptr) ++counters_.offload_fallbacks;
  }
  if (host == nullptr) {
    registry_->move(id, Residency::discarded);
    allocator_.deallocate(t.device);  // stream-ordered on the compute stream
    t.device = nullptr;
    ++counters_.discards;
    return t.desc.bytes;
  }
  // Offload: the copy starts after the compute stream's work so far (which produced the
  // tensor) and the block is reused only after the copy has read it.
  registry_->move(id, Residency::offloading);
  Event ready = backend_.create_event();
  backend_.record(ready, compute_);
  backend_.wait(d2h_, ready);
  backend_.destroy_event(ready);
  backend_.copy_async(host, t.device, t.desc.bytes, CopyKind::device_to_host, d2h_);
  Event done = backend_.create_event();
  backend_.record(done, d2h_);
  offloads_[id] = Copy{done};
  allocator_.record_stream(t.device, d2h_);
  allocator_.deallocate(t.device);
  t.device = nullptr;
  t.host = host;
  ++counters_.offloads;
  counters_.bytes_offloaded += t.desc.bytes;
  return t.desc.bytes;
}

void Runtime::materialize(TensorId id) {
  // Iterative, so a long chain of discarded tensors cannot overflow the stack. A frame pins
  // the inputs of its tensor as they become resident, so materializing one input cannot
  // evict a sibling already brought back; the round limit turns any remaining thrashing
  // into an error instead of a hang.
  struct Frame {
    TensorId id;
    std::vector<TensorId> pinned;
  };
  std::vector<Frame> stack{{id, {}}};
  auto unpin_frame = [this](Frame& f) {
    for (TensorId in : f.pinned) registry_->unpin(in);
    f.pinned.clear();
  };
  const std::size_t limit = 64 * (registry_->size() + 1);
  try {
    for (std::size_t rounds = 0; !stack.empty(); ++rounds) {
      MEMENTO_EXPECTS(rounds < limit,
                      fmt::format("cannot bring tensor {} back within the budget of {} bytes: "
                                  "its inputs keep evicting each other",
                                  id, allocator_.budget()),
                      OutOfMemory);
      Frame& frame = stack.back();
      TrackedTensor& t = registry_->at(frame.id);
      switch (t.state) {
        case Residency::resident:
          unpin_frame(frame);
          stack.pop_back();
          break;
        case Residency::offloading:
        case Residency::on_host:
        case Residency::prefetching:
          prefetch(frame.id);
          registry_->touch(frame.id);
          break;
        case Residency::discarded: {
          std::vector<TensorId> missing;
          for (TensorId in : t.desc.recipe->inputs) {
            if (registry_->at(in).state != Residency::resident) {
              missing.push_back(in);
            } else if (std::find(frame.pinned.begin(), frame.pinned.end(), in) ==
                       frame.pinned.end()) {
              registry_->pin(in);
              frame.pinned.push_back(in);
            }
          }
          if (missing.empty()) {
            recompute(frame.id);
            registry_->touch(frame.id);
          } else {
            for (TensorId in : missing) stack.push_back({in, {}});
          }
          break;
        }
        case Residency::recomputing:
          MEMENTO_FAIL(LogicError, fmt::format("tensor {} is already being recomputed", frame.id));
      }
    }
  } catch (...) {
    for (Frame& f : stack) unpin_frame(f);
    throw;
  }
}

void Runtime::recompute(TensorId id) {
  TrackedTensor& t = registry_->at(id);
  const Recipe& recipe = *t.desc.recipe;
  registry_->move(id, Residency::recomputing);
  for (TensorId input : recipe.inputs) registry_->pin(input);  // the allocation must not evict them
  OpRun run;
  try {
    run = run_op(*recipe.op, recipe.inputs, t.desc.bytes, recipe.rng);
  } catch (...) {
    for (TensorId input : recipe.inputs) registry_->unpin(input);
    t.state = Residency::discarded;  // back where it was: nothing was computed
    throw;
  }
  for (TensorId input : recipe.inputs) registry_->unpin(input);
  t.device = run.output;
  registry_->move(id, Residency::resident);  // stream order: later work sees the result
  ++counters_.recomputes;
  counters_.recompute_flops += run.cost.flops;
}

void Runtime::prefetch(TensorId id) {
  TrackedTensor& t = registry_->at(id);
  void* device = allocator_.allocate(t.desc.bytes, compute_);
  Event ready = backend_.create_event();
  if (t.state == Residency::offloading) {
    // Its copy out may still run: the copy back waits for it on the device, not the host.
    auto copy = offloads_.find(id);
    backend_.wait(h2d_, copy->second.done);
    backend_.destroy_event(copy->second.done);
    offloads_.erase(copy);
    registry_->move(id, Residency::on_host);
  }
  registry_->move(id, Residency::prefetching);
  // The block may be one the compute stream used until now: the copy starts after that
  // work, and the compute stream's later work starts after the copy.
  backend_.record(ready, compute_);
  backend_.wait(h2d_, ready);
  backend_.copy_async(device, t.host, t.desc.bytes, CopyKind::host_to_device, h2d_);
  backend_.record(ready, h2d_);
  backend_.wait(compute_, ready);
  backend_.destroy_event(ready);
  host_pool_->deallocate(t.host, h2d_);
  t.host = nullptr;
  t.device = device;
  registry_->move(id, Residency::resident);
  counters_.bytes_prefetched += t.desc.bytes;
}

}  // namespace memento
