// The C API over one process-wide backend and caching allocator.
#include <fmt/format.h>

#include <memory>
#include <mutex>
#include <string>

#include "capi/instance.hpp"
#include "memento/backends.hpp"
#include "memento/caching_allocator.hpp"
#include "memento/config.hpp"
#include "memento/error.hpp"
#include "memento/memento.h"

namespace memento::capi {
namespace {

// Deliberately never destroyed (as PyTorch does with its allocator): static destructors at
// exit would free device memory after the CUDA runtime may have shut down, and a late
// memento_free from another static destructor would re-create the instance.
std::mutex& g_mutex = *new std::mutex;
std::shared_ptr<Instance>& g_instance = *new std::shared_ptr<Instance>;
thread_local std::string t_last_error;

// Pinned host memory offloads may fill when MEMENTO_HOST_BUDGET is unset (as memento train).
constexpr std::size_t kDefaultHostBudget = std::size_t{16} << 30;

DeviceSpec default_device() {
  DeviceSpec spec;
  if (cuda_device_count() > 0) spec.kind = BackendKind::cuda;
  return spec;
}

}  // namespace

std::shared_ptr<Instance> instance() {
  std::lock_guard lock(g_mutex);
  if (g_instance) return g_instance;
  Config config = config_from_env();
  auto inst = std::make_shared<Instance>();
  DeviceSpec spec = config.device.value_or(default_device());
  inst->backend = make_backend(spec);
  inst->device = spec.kind == BackendKind::cuda ? spec.index : 0;
  AllocatorOptions options;
  if (config.budget) options.budget = config.budget->resolve(inst->backend->info().capacity);
  inst->allocator = std::make_unique<CachingAllocator>(*inst->backend, options);
  inst->host_pool = std::make_unique<PinnedHostPool>(
      *inst->backend, config.host_budget.value_or(kDefaultHostBudget));
  inst->plan = make_plan_state(*inst->backend, *inst->allocator, *inst->host_pool);
  g_instance = inst;
  return inst;
}

std::string& last_error() noexcept { return t_last_error; }

}  // namespace memento::capi

namespace {

using namespace memento;
using capi::guarded;
using capi::instance;
using capi::Instance;

void check_device(const Instance& inst, int device) {
  MEMENTO_EXPECTS(device == inst.device,
                  fmt::format("device {} does not match the configured device {} ({})", device,
                              inst.device, inst.backend->info().name));
}

}  // namespace

extern "C" {

void* memento_malloc(ssize_t size, int device, memento_stream_t stream) {
  return guarded("memento_malloc", static_cast<void*>(nullptr), [&]() -> void* {
    MEMENTO_EXPECTS(size >= 0, fmt::format("negative size {}", size));
    auto inst = instance();
    check_device(*inst, device);
    if (size == 0) return nullptr;
    Stream s = inst->backend->stream_from_native(stream);
    return inst->allocator->allocate(static_cast<std::size_t>(size), s);
  });
}

void memento_free(void* ptr, ssize_t size, int device, memento_stream_t /*stream*/) {
  // The block remembers its allocation stream; PyTorch passes the same one here.
  guarded("memento_free", 0, [&] {
    if (ptr == nullptr) return 0;
    auto inst = instance();
    check_device(*inst, device);
    std::size_t requested = inst->allocator->requested_size(ptr);
    MEMENTO_EXPECTS(size >= 0 && static_cast<std::size_t>(size) == requested,
                    fmt::format("free of {} with size {} but it was allocated with size {}; "
                                "not freed",
                                ptr, size, requested));
    inst->allocator->deallocate(ptr);
    return 0;
  });
}

int memento_record_stream(void* ptr, memento_stream_t stream) {
  return guarded("memento_record_stream", -1, [&] {
    auto inst = instance();
    inst->allocator->record_stream(ptr, inst->backend->stream_from_native(stream));
    return 0;
  });
}

int memento_get_stats(memento_stats* out) {
  return guarded("memento_get_stats", -1, [&] {
    MEMENTO_EXPECTS(out != nullptr, "null output pointer");
    AllocatorStats s = instance()->allocator->stats();
    *out = memento_stats{
        s.budget,         s.allocated.current, s.allocated.peak,      s.requested.current,
        s.requested.peak, s.reserved.current,  s.reserved.peak,       s.active.current,
        s.active.peak,    s.segments.current,  s.live_blocks.current, s.allocations,
        s.frees,          s.cache_hits,        s.segment_allocs,      s.segment_frees,
        s.pressure_calls, s.pressure_freed,    s.out_of_memory,       s.fragmentation()};
    return 0;
  });
}

int memento_set_budget(size_t bytes) {
  return guarded("memento_set_budget", -1, [&] {
    instance()->allocator->set_budget(bytes);
    return 0;
  });
}

size_t memento_get_budget(void) {
  return guarded("memento_get_budget", std::size_t{0},
                 [&] { return instance()->allocator->budget(); });
}

int memento_empty_cache(void) {
  return guarded("memento_empty_cache", -1, [&] {
    instance()->allocator->release_cached();
    return 0;
  });
}

const char* memento_last_error(void) { return capi::last_error().c_str(); }

void memento_shutdown(void) {
  std::shared_ptr<Instance> inst;
  {
    std::lock_guard lock(capi::g_mutex);
    inst = std::move(capi::g_instance);
  }
  inst.reset();
  // Calls in flight on other threads hold their own reference; the last one to finish
  // destroys the instance (the plan state, pinned pool, allocator, then backend, by
  // member order).
}

}  // extern "C"
