// The runtime's eviction manager (the allocator's pressure handler) and the way back:
// materialize() through recompute, waiting for offloads, and prefetch. The policy sees each
// candidate as an EvictionCandidate (memento/policy.hpp) built here from the registry's
// record, never the record itself: policies stay below the runtime in the include graph.
#include <fmt/format.h>

#include <algorithm>
#include <utility>

#include "memento/error.hpp"
#include "memento/runtime.hpp"
#include "runtime/tensor_registry.hpp"

namespace memento {
namespace {

/// What the policy sees of `t`, copied on the stack each time it is asked: a handful of
/// scalars, no allocation, so ranking every candidate under pressure stays cheap. Reads
/// the next_use_seconds and evicted_inputs_seconds last set on the record.
EvictionCandidate candidate_view(const TrackedTensor& t) noexcept {
  return {.bytes = t.desc.bytes,
          .has_recipe = t.desc.recipe.has_value(),
          .recompute_seconds = t.desc.compute_seconds,
          .evicted_inputs_seconds = t.evicted_inputs_seconds,
          .next_use_seconds = t.next_use_seconds,
          .last_access = t.last_access};
}

}  // namespace

double Runtime::evicted_inputs_seconds(const TrackedTensor& t) const {
  // Depth-first over discarded ancestors, each counted once; bounded so a pathological
  // graph cannot make a pressure call quadratic.
  constexpr std::size_t kMaxVisited = 256;
  if (!t.desc.recipe) return 0;
  std::vector<TensorId> work(t.desc.recipe->inputs.begin(), t.desc.recipe->inputs.end());
  std::vector<TensorId> seen;
  double seconds = 0;
  while (!work.empty() && seen.size() < kMaxVisited) {
    TensorId id = work.back();
    work.pop_back();
    const TrackedTensor& in = registry_->at(id);
    if (in.state != Residency::discarded || std::find(seen.begin(), seen.end(), id) != seen.end())
      continue;
    seen.push_back(id);
    seconds += in.desc.compute_seconds;
    work.insert(work.end(), in.desc.recipe->inputs.begin(), in.desc.recipe->inputs.end());
  }
  return seconds;
}

PolicyContext Runtime::policy_context() const {
  PolicyContext ctx;
  ctx.now = registry_->clock();
  ctx.host_pool_available = host_pool_ != nullptr;
  ctx.d2h_bandwidth = options_.d2h_bandwidth;
  ctx.h2d_bandwidth = options_.h2d_bandwidth;
  ctx.stall_per_offload = stall_per_offload_;
  return ctx;
}

std::size_t Runtime::on_pressure(std::size_t bytes_needed) {
  std::lock_guard lock(mutex_);
  const PolicyContext ctx = policy_context();
  std::vector<const TrackedTensor*> candidates = registry_->eviction_candidates();
  std::vector<std::pair<double, TensorId>> ranked;
  ranked.reserve(candidates.size());
  for (const TrackedTensor* c : candidates) {
    TrackedTensor& t = registry_->at(c->id);
    t.next_use_seconds = next_use_seconds(t.id);
    t.evicted_inputs_seconds = evicted_inputs_seconds(t);
    ranked.emplace_back(policy_->score(candidate_view(t), ctx), t.id);
  }
  // Highest score first; ties by id so the choice is deterministic.
  std::sort(ranked.begin(), ranked.end(), [](const auto& a, const auto& b) {
    return a.first != b.first ? a.first > b.first : a.second < b.second;
  });
  std::size_t freed = 0;
  for (const auto& [score, id] : ranked) {
    if (freed >= bytes_needed) break;
    freed += evict(id, policy_->action(candidate_view(registry_->at(id)), ctx));
  }
  pressure_bytes_ += freed;
  return freed;
}

std::size_t Runtime::evict(TensorId id, EvictAction action, bool fallback) {
  // A copy back issued ahead of use that memory cannot afford after all: it lands first
  // (the compute stream waits for it), then leaves like any resident tensor.
  if (registry_->at(id).state == Residency::prefetching) finish_prefetch(id);
  observe_eviction();
  TrackedTensor& t = registry_->at(id);
  const bool can_discard = t.desc.recipe.has_value();
  void* host = nullptr;
  if (action == EvictAction::offload || !can_discard) {
    host = host_pool_ != nullptr ? host_pool_->try_allocate(t.desc.bytes) : nullptr;
    if (host == nullptr && (!can_discard || !fallback)) return 0;  // no way out: leave it
    if (host == nullptr) ++counters_.offload_fallbacks;
  }
  if (host == nullptr) {
    // The record first, the block last: a release that raises has still released it.
    registry_->move(id, Residency::discarded);
    void* device = std::exchange(t.device, nullptr);
    ++counters_.discards;
    trace_instant("evict", "discard", id, t.desc.bytes);
    allocator_.deallocate(device);  // stream-ordered on the compute stream
    trace_memory();
    return t.desc.bytes;
  }
  // Offload: the copy starts after the compute stream's work so far (which produced the
  // tensor) and the block is reused only after the copy has read it. Until the copy is
  // queued nothing has changed, so a backend error leaves the tensor resident.
  Event done{};
  bool have_done = false;
  try {
    Event ready = backend_.create_event();
    backend_.record(ready, compute_);
    backend_.wait(d2h_, ready);
    backend_.destroy_event(ready);
    backend_.copy_async(host, t.device, t.desc.bytes, CopyKind::device_to_host, d2h_);
    done = backend_.create_event();
    have_done = true;
    backend_.record(done, d2h_);
    allocator_.record_stream(t.device, d2h_);
  } catch (...) {
    if (have_done) backend_.destroy_event(done);
    host_pool_->deallocate(host, d2h_);  // reused only after whatever the copy did
    throw;
  }
  registry_->move(id, Residency::offloading);
  offloads_[id] = Copy{done};
  note_unverified(id);
  void* device = std::exchange(t.device, nullptr);
  t.host = host;
  ++counters_.offloads;
  counters_.bytes_offloaded += t.desc.bytes;
  trace_instant("evict", fallback ? "offload" : "early offload", id, t.desc.bytes);
  if (auto it = ordinal_.find(id); in_step_ && it != ordinal_.end()) {
    if (offloaded_.size() <= it->second) offloaded_.resize(it->second + 1);
    offloaded_[it->second] = true;
  }
  allocator_.deallocate(device);  // last: a release that raises has still released it
  trace_memory();
  return t.desc.bytes;
}

void Runtime::offload_early(TensorId id) {
  if (!options_.early_offload || !in_step_ || host_pool_ == nullptr) return;
  auto it = ordinal_.find(id);
  if (it == ordinal_.end() || it->second >= last_offloaded_.size() || !last_offloaded_[it->second])
    return;
  TrackedTensor& t = registry_->at(id);
  if (t.state != Residency::resident || t.pins > 0 || !t.desc.evictable) return;
  // Only when the next use is far enough ahead for the copy out and back to hide behind
  // the compute in between (with unknown link rates: whenever a next use is known), and
  // when the policy would offload it now rather than discard it.
  const double gap = next_use_seconds(id);
  if (gap < 0) return;
  t.next_use_seconds = gap;
  if (policy_->action(candidate_view(t), policy_context()) != EvictAction::offload) return;
  const double bytes = static_cast<double>(t.desc.bytes);
  double round_trip = 0;
  if (options_.d2h_bandwidth > 0) round_trip += bytes / options_.d2h_bandwidth;
  if (options_.h2d_bandwidth > 0) round_trip += bytes / options_.h2d_bandwidth;
  if (gap < round_trip) return;
  if (evict(id, EvictAction::offload, /*fallback=*/false) > 0) ++counters_.early_offloads;
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
      MEMENTO_EXPECTS(t.lost.empty(), fmt::format("tensor {} was lost: {}", frame.id, t.lost),
                      DataLost);
      switch (t.state) {
        case Residency::resident:
          unpin_frame(frame);
          stack.pop_back();
          break;
        case Residency::offloading:
        case Residency::on_host:
          prefetch(frame.id);
          registry_->touch(frame.id);
          break;
        case Residency::prefetching:
          finish_prefetch(frame.id);
          break;
        case Residency::discarded: {
          std::vector<TensorId> missing;
          for (TensorId in : t.desc.recipe->inputs) {
            const std::string& input_lost = registry_->at(in).lost;
            MEMENTO_EXPECTS(input_lost.empty(),
                            fmt::format("tensor {} cannot be recomputed: its input, tensor {}, "
                                        "was lost: {}",
                                        frame.id, in, input_lost),
                            DataLost);
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
  const double start = backend_.now();
  TrackedTensor& t = registry_->at(id);
  const Recipe& recipe = *t.desc.recipe;
  registry_->move(id, Residency::recomputing);
  for (TensorId input : recipe.inputs) registry_->pin(input);  // the allocation must not evict them
  OpRun run;
  try {
    run = run_op(*recipe.op, recipe.inputs, t.desc.bytes, recipe.rng, KernelPhase::recompute);
  } catch (...) {
    for (TensorId input : recipe.inputs) registry_->unpin(input);
    t.state = Residency::discarded;  // back where it was: nothing was computed
    throw;
  }
  for (TensorId input : recipe.inputs) registry_->unpin(input);
  t.device = run.output;
  registry_->move(id, Residency::resident);  // stream order: later work sees the result
  note_unverified(id);
  ++counters_.recomputes;
  counters_.recompute_flops += run.cost.flops;
  counters_.recompute_seconds += modelled_seconds(run.cost);
  recompute_work_ += modelled_seconds(run.cost);
  if (trace_) trace_span("recompute", recipe.op->name(), start, id, t.desc.bytes);
}

bool Runtime::prefetch(TensorId id, bool early) {
  TrackedTensor& t = registry_->at(id);
  MEMENTO_EXPECTS(t.state == Residency::on_host || t.state == Residency::offloading,
                  fmt::format("prefetch: tensor {} is {}, not on the host", id, to_string(t.state)),
                  LogicError);
  void* device = early ? allocator_.try_allocate(t.desc.bytes, compute_)
                       : allocator_.allocate(t.desc.bytes, compute_);
  if (device == nullptr) return false;
  Event ready{};
  Event arrived{};
  bool have_ready = false;
  bool have_arrived = false;
  bool copying = false;
  try {
    ready = backend_.create_event();
    have_ready = true;
    if (t.state == Residency::offloading) {
      // Its copy out may still run: the copy back waits for it on the device, not the host.
      backend_.wait(h2d_, offloads_.at(id).done);
    }
    // The block may be one the compute stream used until now: the copy starts after that
    // work. The compute stream waits for the copy only when the tensor is used
    // (finish_prefetch), so the copy overlaps the compute in between.
    backend_.record(ready, compute_);
    backend_.wait(h2d_, ready);
    backend_.copy_async(device, t.host, t.desc.bytes, CopyKind::host_to_device, h2d_);
    copying = true;
    arrived = backend_.create_event();
    have_arrived = true;
    backend_.record(arrived, h2d_);
  } catch (...) {
    if (have_ready) backend_.destroy_event(ready);
    if (have_arrived) backend_.destroy_event(arrived);
    // A queued copy may still write the block: it is reused only after the copy stream.
    if (copying) allocator_.record_stream(device, h2d_);
    allocator_.deallocate(device);
    throw;
  }
  backend_.destroy_event(ready);
  if (t.state == Residency::offloading) {
    auto copy = offloads_.find(id);
    backend_.destroy_event(copy->second.done);
    offloads_.erase(copy);
    registry_->move(id, Residency::on_host);
  }
  registry_->move(id, Residency::prefetching);
  prefetches_[id] = Copy{arrived};
  note_unverified(id);
  void* host = std::exchange(t.host, nullptr);
  t.device = device;
  counters_.bytes_prefetched += t.desc.bytes;
  trace_instant("copy back", "prefetch", id, t.desc.bytes);
  host_pool_->deallocate(host, h2d_);  // last: a release that raises has still released it
  trace_memory();
  return true;
}

void Runtime::finish_prefetch(TensorId id) {
  auto copy = prefetches_.find(id);
  backend_.wait(compute_, copy->second.done);  // later compute sees the data
  backend_.destroy_event(copy->second.done);
  prefetches_.erase(copy);
  registry_->move(id, Residency::resident);
}

}  // namespace memento
