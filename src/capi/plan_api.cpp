// The decision-only C API (memento.h, "Planning for a framework that owns its tensors"): the
// caller describes a step as a StepGraph (tensors by creation ordinal, regions as recipes,
// uses and frees as points), memento plans it with plan_step and answers per tensor; offloads
// and copies back run on memento's own streams. No CUDA headers: it builds on every backend.
#include <fmt/format.h>
#include <time.h>

#include <cmath>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <utility>
#include <vector>

#include "capi/instance.hpp"
#include "common/log.hpp"
#include "memento/bytes.hpp"
#include "memento/error.hpp"
#include "memento/memento.h"
#include "runtime/step_graph.hpp"
#include "runtime/step_planner.hpp"

namespace memento::capi {
namespace {

double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

// The link as the runtime's planner counts on it: copies back given half again as long.
constexpr double kLinkDerate = 1.5;
// An id is the step (31 bits) above the creation ordinal (32 bits): ids kept past their step
// are caught instead of naming another step's tensor.
constexpr int kOrdinalBits = 32;
constexpr std::uint64_t kOrdinalMask = (std::uint64_t{1} << kOrdinalBits) - 1;
constexpr std::uint64_t kStepMask = (std::uint64_t{1} << 31) - 1;

}  // namespace

class PlanState {
 public:
  PlanState(Backend& backend, CachingAllocator& allocator, PinnedHostPool& host_pool)
      : backend_(backend), allocator_(allocator), host_pool_(host_pool) {}
  PlanState(const PlanState&) = delete;
  PlanState& operator=(const PlanState&) = delete;

  ~PlanState() {
    std::lock_guard lock(mutex_);
    try {
      for (Tensor& t : tensors_) drop_host_copy(t);
      if (d2h_) backend_.synchronize(*d2h_);
      if (h2d_) backend_.synchronize(*h2d_);
    } catch (const std::exception& e) {
      log::error(fmt::format("memento_shutdown: waiting for the plan API's copies: {}", e.what()));
    }
    for (Event e : spare_events_) backend_.destroy_event(e);
  }

  void begin() {
    std::lock_guard lock(mutex_);
    MEMENTO_EXPECTS(!open_,
                    "a step is already open: memento_step_begin was called twice "
                    "without memento_step_end");
    ++step_;
    graph_.clear();
    tensors_.clear();
    clock_ = 0;
    live_bytes_ = 0;
    new_plan_ = false;
    begin_other_ = static_cast<double>(allocator_.active_bytes());
    // A new budget: plan again for it from the step already seen, before this one runs.
    if (plan_ && plan_->summary.budget_bytes != allocator_.budget()) {
      make_plan(plan_graph_);
      new_plan_ = true;
    }
    following_ = plan_ != nullptr;
    open_ = true;
  }

  void end(memento_step_stats* out) {
    std::lock_guard lock(mutex_);
    MEMENTO_EXPECTS(open_, "no step is open: memento_step_end without memento_step_begin");
    open_ = false;
    std::size_t tensor_bytes = 0;
    for (Tensor& t : tensors_) {
      drop_host_copy(t);
      tensor_bytes += t.bytes;
    }
    const bool followed = following_ && graph_.same_program(plan_graph_);
    if (!followed) {
      // Memory the step left allocated beyond what it started with (an optimizer's state
      // made at its first update) is there throughout the next steps: count it everywhere.
      const double left = other_bytes() - begin_other_;
      if (left > 0)
        for (GraphPoint& p : graph_.points) p.other_bytes += left;
      make_plan(graph_);
      std::swap(plan_graph_, graph_);
      new_plan_ = true;
    } else if (plan_->summary.budget_bytes != allocator_.budget()) {
      // The budget changed during the step: plan from the step observed (a planned step's
      // memory is the plan's, and memento does not see the caller's discards).
      make_plan(plan_graph_);
      new_plan_ = true;
    }
    if (out == nullptr) return;
    const StepPlanSummary& s = plan_->summary;
    *out = memento_step_stats{};
    out->phase = followed ? MEMENTO_STEP_PLANNED : MEMENTO_STEP_OBSERVED;
    out->new_plan = new_plan_ ? 1 : 0;
    out->fits = s.fits ? 1 : 0;
    out->tensors = tensors_.size();
    out->tensor_bytes = tensor_bytes;
    out->kept = s.kept;
    out->offloaded = s.offloaded;
    out->recomputed = s.discarded;
    out->kept_bytes = s.kept_bytes;
    out->offloaded_bytes = s.offloaded_bytes;
    out->recomputed_bytes = s.discarded_bytes;
    out->budget = s.budget_bytes;
    out->predicted_peak = s.predicted_peak;
    out->observed_seconds = s.observed_seconds;
    out->predicted_extra_seconds = s.predicted_extra_seconds;
    out->plan_cpu_seconds = new_plan_ ? s.plan_cpu_seconds : 0;
  }

  std::int64_t add_tensor(const void* ptr, std::size_t bytes) {
    std::lock_guard lock(mutex_);
    expect_open();
    MEMENTO_EXPECTS(ptr != nullptr, "a tensor's pointer must not be NULL");
    MEMENTO_EXPECTS(bytes > 0, "a tensor's bytes must be positive, got 0");
    const std::size_t ordinal = tensors_.size();
    MEMENTO_EXPECTS(ordinal <= kOrdinalMask,
                    fmt::format("a step registers at most {} tensors", kOrdinalMask + 1));
    GraphTensor g;
    g.bytes = bytes;
    g.created = graph_.points.size();
    tensors_.push_back(Tensor{ptr, bytes});
    live_bytes_ += bytes;
    graph_.tensors.push_back(std::move(g));
    add_point();
    // Another program than the plan's: stop following it for the rest of the step.
    if (following_ &&
        (ordinal >= plan_graph_.tensors.size() || plan_graph_.tensors[ordinal].bytes != bytes))
      following_ = false;
    return static_cast<std::int64_t>(((step_ & kStepMask) << kOrdinalBits) | ordinal);
  }

  void add_region(const std::int64_t* outputs, std::size_t n_outputs, const std::int64_t* inputs,
                  std::size_t n_inputs, double seconds) {
    std::lock_guard lock(mutex_);
    expect_open();
    MEMENTO_EXPECTS(n_outputs > 0, "a region needs at least one output (n_outputs is 0)");
    MEMENTO_EXPECTS(outputs != nullptr,
                    fmt::format("outputs is NULL with n_outputs {}", n_outputs));
    MEMENTO_EXPECTS(n_inputs == 0 || inputs != nullptr,
                    fmt::format("inputs is NULL with n_inputs {}", n_inputs));
    MEMENTO_EXPECTS(std::isfinite(seconds) && seconds >= 0,
                    fmt::format("a region's cost must be finite seconds >= 0, got {}", seconds));
    std::vector<std::size_t> in;
    in.reserve(n_inputs);
    for (std::size_t i = 0; i < n_inputs; ++i) in.push_back(ordinal_of(inputs[i], "input"));
    std::vector<std::size_t> out;
    out.reserve(n_outputs);
    for (std::size_t i = 0; i < n_outputs; ++i) {
      const std::size_t o = ordinal_of(outputs[i], "output");
      MEMENTO_EXPECTS(!graph_.tensors[o].recipe,
                      fmt::format("tensor id {} is already the output of a region", outputs[i]));
      for (std::size_t p : out)
        MEMENTO_EXPECTS(p != o, fmt::format("tensor id {} is an output twice", outputs[i]));
      for (std::size_t p : in)
        MEMENTO_EXPECTS(p != o, fmt::format("tensor id {} is both an input and an output of "
                                            "the region",
                                            outputs[i]));
      out.push_back(o);
    }
    for (std::size_t o : out) {
      GraphTensor& g = graph_.tensors[o];
      g.recipe = true;
      g.inputs = in;
      g.seconds = seconds;
      if (following_ && (!plan_graph_.tensors[o].recipe || plan_graph_.tensors[o].inputs != in))
        following_ = false;
    }
    clock_ += seconds;
  }

  void use(std::int64_t id) {
    std::lock_guard lock(mutex_);
    const std::size_t o = live_ordinal(id);
    MEMENTO_EXPECTS(tensors_[o].host == nullptr,
                    fmt::format("tensor id {} is offloaded: copy it back (memento_copy_back) "
                                "before using it",
                                id));
    GraphTensor& g = graph_.tensors[o];
    g.uses.push_back(graph_.points.size());
    add_point();
    if (following_ && g.uses.size() > plan_graph_.tensors[o].uses.size()) following_ = false;
  }

  void free(std::int64_t id) {
    std::lock_guard lock(mutex_);
    const std::size_t o = live_ordinal(id);
    Tensor& t = tensors_[o];
    drop_host_copy(t);
    t.live = false;
    live_bytes_ -= t.bytes;
    graph_.tensors[o].freed = graph_.points.size();
    add_point();
  }

  TensorDecision decision(std::int64_t id) {
    std::lock_guard lock(mutex_);
    const std::size_t o = ordinal_of(id, "tensor");
    if (!following_ || o >= plan_->decisions.size()) return {};
    return plan_->decisions[o];
  }

  void offload(std::int64_t id, Stream caller) {
    std::lock_guard lock(mutex_);
    const std::size_t o = live_ordinal(id);
    Tensor& t = tensors_[o];
    MEMENTO_EXPECTS(t.host == nullptr,
                    fmt::format("tensor id {} is already offloaded; copy it back "
                                "(memento_copy_back) before offloading it again",
                                id));
    ensure_streams();
    void* host = host_pool_.try_allocate(t.bytes);
    if (host == nullptr) {
      const PinnedPoolStats s = host_pool_.stats();
      MEMENTO_FAIL(
          OutOfMemory,
          fmt::format("the pinned host pool is exhausted: {} for tensor id {} do not "
                      "fit its budget of {} ({} in use; MEMENTO_HOST_BUDGET sets it); "
                      "keep the tensor on the device",
                      format_bytes(t.bytes), id, format_bytes(s.budget), format_bytes(s.in_use)));
    }
    const Event done = take_event();
    try {
      wait_for(*d2h_, caller);
      backend_.copy_async(host, t.ptr, t.bytes, CopyKind::device_to_host, *d2h_);
      backend_.record(done, *d2h_);
    } catch (...) {
      spare_events_.push_back(done);
      host_pool_.deallocate(host, *d2h_);
      throw;
    }
    t.host = host;
    t.copied_out = done;
    // The storage may be freed at once when the allocator knows the copy still reads it;
    // otherwise the caller's later work waits for the copy.
    if (!record_use(t.ptr, *d2h_)) backend_.wait(caller, t.copied_out);
  }

  void copy_back(std::int64_t id, void* dst, Stream caller) {
    std::lock_guard lock(mutex_);
    const std::size_t o = live_ordinal(id);
    Tensor& t = tensors_[o];
    MEMENTO_EXPECTS(t.host != nullptr,
                    fmt::format("tensor id {} is not offloaded (memento_offload first)", id));
    MEMENTO_EXPECTS(dst != nullptr, "the destination must not be NULL");
    wait_for(*h2d_, caller);  // dst may still be in use by the caller's earlier work
    backend_.wait(*h2d_, t.copied_out);
    backend_.copy_async(dst, t.host, t.bytes, CopyKind::host_to_device, *h2d_);
    wait_for(caller, *h2d_);
    host_pool_.deallocate(t.host, *h2d_);
    spare_events_.push_back(t.copied_out);
    t.host = nullptr;
    t.ptr = dst;
  }

 private:
  struct Tensor {
    const void* ptr = nullptr;
    std::size_t bytes = 0;
    bool live = true;
    void* host = nullptr;  ///< the pinned copy while offloaded
    Event copied_out{};    ///< recorded after the copy out, while offloaded
  };

  void expect_open() const {
    MEMENTO_EXPECTS(open_, "no step is open: call memento_step_begin first");
  }

  // The ordinal behind an id registered in the open step.
  std::size_t ordinal_of(std::int64_t id, const char* role) const {
    expect_open();
    MEMENTO_EXPECTS(id >= 0, fmt::format("unknown {} id {}: ids are >= 0 "
                                         "(memento_tensor_register returns -1 on error)",
                                         role, id));
    const auto bits = static_cast<std::uint64_t>(id);
    const std::uint64_t step = step_ & kStepMask;
    MEMENTO_EXPECTS(bits >> kOrdinalBits == step,
                    fmt::format("unknown {} id {}: it is from step {}, this is step {} (ids are "
                                "valid in the step that registered them)",
                                role, id, bits >> kOrdinalBits, step));
    const std::size_t ordinal = bits & kOrdinalMask;
    MEMENTO_EXPECTS(ordinal < tensors_.size(),
                    fmt::format("unknown {} id {}: not registered (it names tensor {} of step "
                                "{}, which has registered {})",
                                role, id, ordinal, step, tensors_.size()));
    return ordinal;
  }

  std::size_t live_ordinal(std::int64_t id) const {
    const std::size_t o = ordinal_of(id, "tensor");
    MEMENTO_EXPECTS(tensors_[o].live,
                    fmt::format("tensor id {} was freed (memento_tensor_free)", id));
    return o;
  }

  // The device bytes that are not the step's live tensors (never below 0: storage that did
  // not come from memento_malloc is not in the allocator's count).
  double other_bytes() const {
    const std::size_t active = allocator_.active_bytes();
    return active > live_bytes_ ? static_cast<double>(active - live_bytes_) : 0.0;
  }

  void add_point() { graph_.points.push_back({clock_, other_bytes()}); }

  void make_plan(const StepGraph& graph) {
    const double start = thread_cpu_seconds();
    const DeviceInfo& info = backend_.info();
    PlanInputs in;
    in.budget_bytes = static_cast<double>(allocator_.budget());
    in.d2h_bandwidth = info.d2h_bandwidth / kLinkDerate;
    in.h2d_bandwidth = info.h2d_bandwidth / kLinkDerate;
    in.host_bytes = static_cast<double>(host_pool_.stats().budget);
    auto plan = std::make_unique<StepPlan>(plan_step(graph, in, {}));
    plan->summary.plan_cpu_seconds = thread_cpu_seconds() - start;
    plan_ = std::move(plan);
  }

  void ensure_streams() {
    if (!d2h_) d2h_ = backend_.create_stream();
    if (!h2d_) h2d_ = backend_.create_stream();
  }

  Event take_event() {
    if (spare_events_.empty()) return backend_.create_event();
    const Event e = spare_events_.back();
    spare_events_.pop_back();
    return e;
  }

  // Later work on `waiter` waits for the work queued on `target` so far. A wait holds the
  // event's capture at the time of the call, so the event can be reused at once.
  void wait_for(Stream waiter, Stream target) {
    const Event e = take_event();
    spare_events_.push_back(e);
    backend_.record(e, target);
    backend_.wait(waiter, e);
  }

  // Marks `stream` as a user of the block at `ptr` when it is a memento_malloc block.
  bool record_use(const void* ptr, Stream stream) {
    try {
      allocator_.record_stream(const_cast<void*>(ptr), stream);
      return true;
    } catch (const LogicError&) {
      return false;  // not the start of a live block of the allocator
    }
  }

  // Gives a still offloaded tensor's host buffer back once its copy out has run.
  void drop_host_copy(Tensor& t) {
    if (t.host == nullptr) return;
    host_pool_.deallocate(t.host, *d2h_);
    spare_events_.push_back(t.copied_out);
    t.host = nullptr;
  }

  Backend& backend_;
  CachingAllocator& allocator_;
  PinnedHostPool& host_pool_;
  std::mutex mutex_;
  bool open_ = false;
  std::uint64_t step_ = 0;
  StepGraph graph_;              ///< the open (or last) step, as observed
  std::vector<Tensor> tensors_;  ///< the open step's, by ordinal
  double clock_ = 0;             ///< regions' seconds so far in the open step
  std::size_t live_bytes_ = 0;   ///< registered tensors not freed
  double begin_other_ = 0;       ///< other bytes at the step's begin
  bool following_ = false;       ///< the open step still matches the plan's
  bool new_plan_ = false;        ///< a plan was made for or at the end of the step
  StepGraph plan_graph_;         ///< the step the plan was made from
  std::unique_ptr<StepPlan> plan_;
  std::optional<Stream> d2h_, h2d_;  ///< memento's copy streams, made on first offload
  std::vector<Event> spare_events_;
};

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
    inst->plan->offload(id, inst->backend->stream_from_native(stream));
    return 0;
  });
}

int memento_copy_back(int64_t id, void* dst, memento_stream_t stream) {
  return guarded("memento_copy_back", -1, [&] {
    auto inst = instance();
    inst->plan->copy_back(id, dst, inst->backend->stream_from_native(stream));
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
