#include "memento/runtime.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <unordered_set>
#include <utility>

#include "common/log.hpp"
#include "memento/error.hpp"
#include "runtime/kernel_timer.hpp"
#include "runtime/step_planner.hpp"
#include "runtime/tensor_registry.hpp"
#include "trace/chrome_trace.hpp"

namespace memento {

Runtime::Runtime(Backend& backend, CachingAllocator& allocator, PinnedHostPool* host_pool,
                 std::unique_ptr<Policy> policy, RuntimeOptions options)
    : backend_(backend),
      allocator_(allocator),
      host_pool_(host_pool),
      policy_(std::move(policy)),
      options_(options),
      compute_(Backend::default_stream()),
      d2h_(backend.create_stream()),
      h2d_(backend.create_stream()),
      registry_(std::make_unique<TensorRegistry>()) {
  MEMENTO_EXPECTS(policy_ != nullptr, "the runtime needs an eviction policy");
  const DeviceInfo& info = backend_.info();
  const auto pick = [](double option, double device, double fallback) {
    MEMENTO_EXPECTS(option >= 0, fmt::format("runtime options: a rate of {} is not accepted; "
                                             "rates must be >= 0 (0: the device's)",
                                             option));
    return option > 0 ? option : device > 0 ? device : fallback;
  };
  options_.vector_flops = pick(options_.vector_flops, info.vector_flops, 1e12);
  options_.matrix_flops = pick(options_.matrix_flops, info.matrix_flops, options_.vector_flops);
  options_.memory_bandwidth = pick(options_.memory_bandwidth, info.memory_bandwidth, 1e12);
  options_.d2h_bandwidth = pick(options_.d2h_bandwidth, info.d2h_bandwidth, 0);
  options_.h2d_bandwidth = pick(options_.h2d_bandwidth, info.h2d_bandwidth, 0);
  if (!options_.trace_file.empty()) {
    trace_ = std::make_unique<ChromeTrace>(options_.trace_file);
    trace_->set_other_data("device", info.name);
    trace_->set_other_data("policy", policy_->name());
    trace_->set_other_data("clock",
                           info.virtual_clock ? "sim virtual host clock" : "host wall clock");
    kernel_timer_ = std::make_unique<KernelTimer>(backend_, *trace_);
    kernel_timer_->name_stream(compute_, "compute stream");
    kernel_timer_->name_stream(d2h_, "d2h stream");
    kernel_timer_->name_stream(h2d_, "h2d stream");
    trace_->set_other_data("device_timing", kernel_timer_->method());
  }
  handler_id_ = allocator_.add_pressure_handler(
      [this](std::size_t needed, Stream) { return on_pressure(needed); });
  allocator_.set_evictable_bytes_probe([this] {
    std::lock_guard lock(mutex_);
    std::size_t n = 0;
    for (const TrackedTensor* t : registry_->eviction_candidates()) n += t->desc.bytes;
    return n;
  });
}

Runtime::~Runtime() {
  allocator_.remove_pressure_handler(handler_id_);
  allocator_.set_evictable_bytes_probe({});
  bool idle = false;
  try {
    backend_.synchronize_all();
    idle = true;
  } catch (const std::exception& e) {
    log::error(fmt::format("runtime teardown: {}", e.what()));
  }
  try {
    resolve_kernel_spans(idle);
  } catch (const std::exception& e) {
    log::error(fmt::format("runtime teardown: trace: {}", e.what()));
  }
  for (auto& [id, copy] : offloads_) backend_.destroy_event(copy.done);
  for (auto& [id, copy] : prefetches_) backend_.destroy_event(copy.done);
  // The tensors die with the runtime: their memory goes back (every stream is idle now).
  try {
    for (TrackedTensor* t : registry_->all()) {
      if (t->device != nullptr) allocator_.deallocate(t->device);
      if (t->host != nullptr) host_pool_->deallocate(t->host, d2h_);
    }
  } catch (const std::exception& e) {
    log::error(fmt::format("runtime teardown: {}", e.what()));
  }
}

TensorId Runtime::constant(std::size_t bytes) {
  std::lock_guard lock(mutex_);
  MEMENTO_EXPECTS(bytes > 0, "constant: size must be positive");
  void* device = allocator_.allocate(bytes, compute_);
  TensorDesc desc;
  desc.bytes = bytes;
  desc.evictable = false;
  return track(std::move(desc), device);
}

TensorId Runtime::compute(std::shared_ptr<const Op> op, const std::vector<TensorId>& inputs,
                          std::size_t output_bytes, RngState rng) {
  std::lock_guard lock(mutex_);
  MEMENTO_EXPECTS(op != nullptr, "compute: null op");
  MEMENTO_EXPECTS(output_bytes > 0,
                  fmt::format("compute({}): output size must be positive", op->name()));
  return guarded([&] {
    const double start = backend_.now();
    std::size_t used = 0;
    OpRun run;
    try {
      for (; used < inputs.size(); ++used) (void)use(inputs[used]);
      run = run_op(*op, inputs, output_bytes, rng, KernelPhase::forward);
    } catch (...) {
      for (std::size_t i = 0; i < used; ++i) release(inputs[i]);
      throw;
    }
    for (TensorId id : inputs) release(id);
    TensorDesc desc;
    desc.bytes = output_bytes;
    desc.compute_seconds = modelled_seconds(run.cost);
    const std::string name = trace_ ? op->name() : std::string();
    desc.recipe = Recipe{std::move(op), inputs, rng};
    TensorId id = track(std::move(desc), run.output);
    note_unverified(id);
    trace_span("compute", name, start, id, output_bytes);
    trace_memory();
    return id;
  });
}

Runtime::OpRun Runtime::run_op(const Op& op, const std::vector<TensorId>& inputs,
                               std::size_t output_bytes, const RngState& rng, KernelPhase phase) {
  std::vector<Storage> in;
  std::vector<std::size_t> in_bytes;
  for (TensorId id : inputs) {
    const TrackedTensor& t = registry_->at(id);
    in.push_back({t.device, t.desc.bytes});
    in_bytes.push_back(t.desc.bytes);
  }
  void* out = allocator_.allocate(output_bytes, compute_);
  try {
    const std::string name = kernel_timer_ ? op.name() : std::string();
    launch_traced(compute_, op.make_kernel(in, {out, output_bytes}, rng), {phase, name});
  } catch (...) {
    allocator_.deallocate(out);
    throw;
  }
  KernelCost cost = op.cost(in_bytes, output_bytes);
  step_work_ += modelled_seconds(cost);
  return {out, cost};
}

void Runtime::launch(Stream stream, Kernel kernel, LaunchTag tag) {
  std::lock_guard lock(mutex_);
  const double seconds = modelled_seconds(kernel.cost);
  guarded([&] { launch_traced(stream, std::move(kernel), tag); });
  if (stream == compute_) launch_work_ += seconds;
}

void Runtime::launch_traced(Stream stream, Kernel kernel, LaunchTag tag) {
  if (!kernel_timer_) {
    backend_.launch(stream, std::move(kernel));
    return;
  }
  const KernelTimer::Launch l = kernel_timer_->prepare(kernel, stream, tag);
  try {
    backend_.launch(stream, std::move(kernel));
  } catch (...) {
    kernel_timer_->abandon(l);
    throw;
  }
  kernel_timer_->launched(l);
}

double Runtime::modelled_seconds(const KernelCost& cost) const {
  return roofline_seconds(cost, options_.matrix_flops, options_.vector_flops,
                          options_.memory_bandwidth);
}

TensorId Runtime::track(TensorDesc desc, void* device) {
  TensorId id = registry_->add(std::move(desc), device);
  if (in_step_) {
    ordinal_[id] = by_ordinal_.size();
    by_ordinal_.push_back(id);
    observe_tensor(id);
  }
  return id;
}

void* Runtime::use(TensorId id) {
  std::lock_guard lock(mutex_);
  return guarded([&] {
    registry_->pin(id);
    try {
      materialize(id);
      registry_->touch(id);
      note_use(id);
    } catch (...) {
      registry_->unpin(id);
      throw;
    }
    return registry_->at(id).device;
  });
}

void Runtime::release(TensorId id) {
  std::lock_guard lock(mutex_);
  registry_->unpin(id);
  if (registry_->at(id).pins > 0) return;
  guarded([&] {
    if (plan_in_force_)
      apply_plan(id);
    else
      offload_early(id);
  });
}

void Runtime::free(TensorId id) {
  std::lock_guard lock(mutex_);
  guarded([&] { free_locked(id); });
}

void Runtime::free_locked(TensorId id) {
  const TrackedTensor& t = registry_->at(id);
  MEMENTO_EXPECTS(t.pins == 0, fmt::format("free of tensor {} while in use ({} pins)", id, t.pins));
  observe_free(id);
  if (registry_->recipe_uses(id) > 0) {
    // A live tensor's recipe needs it: its record stays. Its memory goes now if it can be
    // recomputed (only a discarded dependent would ever need it again); otherwise it stays,
    // evictable like any activation.
    freed_.push_back(id);
    if (t.state == Residency::resident && t.desc.recipe && t.desc.evictable) {
      TrackedTensor& mut = registry_->at(id);
      registry_->move(id, Residency::discarded);  // not an eviction: not counted as one
      allocator_.deallocate(std::exchange(mut.device, nullptr));
    }
    return;
  }
  drop(id);
}

void Runtime::forget_recipes_reading(TensorId id) {
  std::lock_guard lock(mutex_);
  guarded([&] { forget_recipes_locked(id); });
}

void Runtime::forget_recipes_locked(TensorId id) {
  (void)registry_->at(id);  // LogicError for an unknown id
  const auto freed = [this](TensorId t) {
    return std::find(freed_.begin(), freed_.end(), t) != freed_.end();
  };
  std::unordered_map<TensorId, std::vector<TensorId>> readers;
  for (const TrackedTensor* t : registry_->all())
    if (t->desc.recipe)
      for (TensorId in : t->desc.recipe->inputs) readers[in].push_back(t->id);
  // The readers of `id`, and of freed readers (recomputing those would read it too).
  std::vector<TensorId> live;
  std::vector<TensorId> dead;  // freed: erased below once nothing reads them
  std::vector<TensorId> work{id};
  std::unordered_set<TensorId> seen{id};
  while (!work.empty()) {
    const TensorId cur = work.back();
    work.pop_back();
    for (TensorId r : readers[cur]) {
      if (!seen.insert(r).second) continue;
      if (freed(r)) {
        dead.push_back(r);
        work.push_back(r);
      } else {
        live.push_back(r);
      }
    }
  }
  // A live reader keeps its data: a discarded one is recomputed now, while what its recipe
  // reads is still there, and then loses its recipe, so nothing can discard it again.
  for (TensorId t : live) {
    if (registry_->at(t).state == Residency::discarded) {
      registry_->pin(t);
      try {
        materialize(t);
      } catch (...) {
        registry_->unpin(t);
        throw;
      }
      registry_->unpin(t);
    }
    for (TensorId in : registry_->at(t).desc.recipe->inputs) dead.push_back(in);
    registry_->forget_recipe(t);
  }
  dead.push_back(id);
  for (TensorId t : dead)
    if (registry_->contains(t) && freed(t) && registry_->recipe_uses(t) == 0 &&
        registry_->at(t).pins == 0)
      drop(t);  // also drops the freed inputs its recipe was the last to need
  trace_memory();
}

void Runtime::drop(TensorId id) {
  std::vector<TensorId> work{id};
  while (!work.empty()) {
    TensorId cur = work.back();
    work.pop_back();
    TrackedTensor& t = registry_->at(cur);
    // A copy back still writing the block: the compute stream (where the block is freed)
    // waits for it first.
    if (t.state == Residency::prefetching) finish_prefetch(cur);
    if (auto copy = offloads_.find(cur); copy != offloads_.end()) {
      backend_.destroy_event(copy->second.done);
      offloads_.erase(copy);
    }
    void* device = t.device;
    void* host = t.host;
    std::vector<TensorId> inputs;
    if (t.desc.recipe) inputs = t.desc.recipe->inputs;
    registry_->erase(cur);
    std::erase(freed_, cur);
    // The record is gone first: a release that raises has still released its memory. A
    // host copy exists only while offloading or on host (a copy back frees it), so the d2h
    // stream's work is all that may still touch it.
    try {
      if (device != nullptr) allocator_.deallocate(device);
    } catch (...) {
      if (host != nullptr) host_pool_->deallocate(host, d2h_);
      throw;
    }
    if (host != nullptr) host_pool_->deallocate(host, d2h_);
    // Inputs the caller already freed may now be needed by no recipe at all.
    for (TensorId in : inputs)
      if (std::find(freed_.begin(), freed_.end(), in) != freed_.end() &&
          registry_->recipe_uses(in) == 0 && registry_->at(in).pins == 0)
        work.push_back(in);
  }
}

std::size_t Runtime::evict_now(TensorId id, EvictAction action) {
  std::lock_guard lock(mutex_);
  const TrackedTensor& t = registry_->at(id);
  if (t.state != Residency::resident || t.pins > 0 || !t.desc.evictable) return 0;
  if (action == EvictAction::discard && !t.desc.recipe) return 0;
  return guarded([&] { return evict(id, action); });
}

Residency Runtime::state(TensorId id) const {
  std::lock_guard lock(mutex_);
  return registry_->at(id).state;
}

bool Runtime::tracks(TensorId id) const {
  std::lock_guard lock(mutex_);
  return registry_->contains(id);
}

RuntimeCounters Runtime::counters() const {
  std::lock_guard lock(mutex_);
  return counters_;
}

}  // namespace memento
