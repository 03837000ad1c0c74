// The decision-only C API's functions (memento.h, "Planning for a framework that owns its
// tensors"): each checks its arguments and calls the instance's PlanState (plan_state.hpp)
// under `guarded`. No CUDA headers: it builds on every backend.
#include <algorithm>
#include <climits>
#include <cstdint>
#include <memory>

#include "capi/instance.hpp"
#include "capi/plan_state.hpp"
#include "memento/error.hpp"
#include "memento/memento.h"

namespace memento::capi {

std::unique_ptr<PlanState, void (*)(PlanState*)> make_plan_state(Backend& backend,
                                                                 CachingAllocator& allocator,
                                                                 PinnedHostPool& host_pool) {
  return {new PlanState(backend, allocator, host_pool), [](PlanState* p) { delete p; }};
}

}  // namespace memento::capi

namespace {

using namespace memento;
using capi::guarded;
using capi::instance;

}  // namespace

extern "C" {

int memento_step_begin(void) {
  return guarded("memento_step_begin", -1, [&] {
    instance()->plan->begin();
    return 0;
  });
}

int memento_step_end(memento_step_stats* out) {
  return guarded("memento_step_end", -1, [&] {
    instance()->plan->end(out);
    return 0;
  });
}

int64_t memento_tensor_register(const void* ptr, size_t bytes, memento_stream_t stream) {
  return guarded("memento_tensor_register", std::int64_t{-1}, [&] {
    auto inst = instance();
    (void)inst->backend->stream_from_native(stream);  // rejects a stream the backend lacks
    return inst->plan->add_tensor(ptr, bytes);
  });
}

int memento_region_register(const int64_t* outputs, size_t n_outputs, const int64_t* inputs,
                            size_t n_inputs, double seconds) {
  return guarded("memento_region_register", -1, [&] {
    instance()->plan->add_region(outputs, n_outputs, inputs, n_inputs, seconds);
    return 0;
  });
}

int memento_tensor_use(int64_t id) {
  return guarded("memento_tensor_use", -1, [&] {
    instance()->plan->use(id);
    return 0;
  });
}

int memento_tensor_free(int64_t id) {
  return guarded("memento_tensor_free", -1, [&] {
    instance()->plan->free(id);
    return 0;
  });
}

int memento_plan_action(int64_t id, int* action, uint32_t* after_use) {
  return guarded("memento_plan_action", -1, [&] {
    MEMENTO_EXPECTS(action != nullptr && after_use != nullptr, "null output pointer");
    const TensorDecision d = instance()->plan->decision(id);
    switch (d.action) {
      case PlannedAction::keep:
        *action = MEMENTO_KEEP;
        break;
      case PlannedAction::offload:
        *action = MEMENTO_OFFLOAD;
        break;
      case PlannedAction::discard:
        *action = MEMENTO_RECOMPUTE;
        break;
    }
    *after_use = d.action == PlannedAction::keep ? 0 : static_cast<std::uint32_t>(d.after_use);
    return 0;
  });
}

int memento_offload(int64_t id, memento_stream_t stream) {
  return guarded("memento_offload", -1, [&] {
    auto inst = instance();
    inst->plan->offload(id, inst->backend->stream_from_native(stream), false);
    return 0;
  });
}

int memento_offload_async(int64_t id, memento_stream_t stream) {
  return guarded("memento_offload_async", -1, [&] {
    auto inst = instance();
    inst->plan->offload(id, inst->backend->stream_from_native(stream), true);
    return 0;
  });
}

int memento_offload_done(int64_t id, int block) {
  return guarded("memento_offload_done", -1,
                 [&] { return instance()->plan->offload_done(id, block != 0) ? 1 : 0; });
}

int memento_copy_back(int64_t id, void* dst, memento_stream_t stream) {
  return guarded("memento_copy_back", -1, [&] {
    auto inst = instance();
    inst->plan->copy_back(id, dst, inst->backend->stream_from_native(stream));
    return 0;
  });
}

int memento_note_seconds(double seconds) {
  return guarded("memento_note_seconds", -1, [&] {
    instance()->plan->note_seconds(seconds);
    return 0;
  });
}

int memento_note_other_bytes(size_t bytes) {
  return guarded("memento_note_other_bytes", -1, [&] {
    instance()->plan->note_other_bytes(bytes);
    return 0;
  });
}

int memento_note_peak(size_t bytes) {
  return guarded("memento_note_peak", -1, [&] {
    instance()->plan->note_peak(bytes);
    return 0;
  });
}

int memento_set_link_bandwidth(double d2h_bytes_per_s, double h2d_bytes_per_s) {
  return guarded("memento_set_link_bandwidth", -1, [&] {
    instance()->plan->set_link_bandwidth(d2h_bytes_per_s, h2d_bytes_per_s);
    return 0;
  });
}

int memento_step_following(void) {
  return guarded("memento_step_following", -1,
                 [&] { return instance()->plan->following() ? 1 : 0; });
}

int memento_prefetch_due(int64_t* ids, size_t cap) {
  return guarded("memento_prefetch_due", -1, [&] {
    // The count is an int: never more than INT_MAX at once.
    const std::size_t n = instance()->plan->prefetch_due(ids, std::min<std::size_t>(cap, INT_MAX));
    return static_cast<int>(n);
  });
}

int memento_prefetch(int64_t id, void* dst, memento_stream_t stream) {
  return guarded("memento_prefetch", -1, [&] {
    auto inst = instance();
    inst->plan->prefetch(id, dst, inst->backend->stream_from_native(stream));
    return 0;
  });
}

int memento_wait_ready(int64_t id, memento_stream_t stream) {
  return guarded("memento_wait_ready", -1, [&] {
    auto inst = instance();
    inst->plan->wait_ready(id, inst->backend->stream_from_native(stream));
    return 0;
  });
}

int memento_synchronize(memento_stream_t stream) {
  return guarded("memento_synchronize", -1, [&] {
    auto inst = instance();
    inst->backend->synchronize(inst->backend->stream_from_native(stream));
    return 0;
  });
}

}  // extern "C"
