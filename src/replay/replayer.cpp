#include "replay/replayer.hpp"

#include <fmt/format.h>

#include <atomic>
#include <memory>
#include <span>
#include <utility>
#include <vector>

#include "memento/backends.hpp"
#include "memento/bytes.hpp"
#include "memento/caching_allocator.hpp"
#include "memento/error.hpp"
#include "memento/op.hpp"
#include "memento/pinned_host_pool.hpp"
#include "memento/policy.hpp"
#include "memento/runtime.hpp"

namespace memento::replay {
namespace {

// A recorded operator: on sim its kernel takes exactly the recorded time, first run and
// recompute alike. An operator with several fresh results is one tensor per result in the
// runtime, each with a recipe that reruns the whole operator; the original call's time is
// spent once, by the first result's kernel, so the others' first launch is free
// (`first_launch_free`) and only their recomputes cost the recorded time again.
class ReplayOp final : public Op {
 public:
  ReplayOp(std::string name, double seconds, bool first_launch_free)
      : name_(std::move(name)), seconds_(seconds), first_launch_free_(first_launch_free) {}

  [[nodiscard]] std::string name() const override { return name_; }

  [[nodiscard]] KernelCost cost(std::span<const std::size_t>, std::size_t) const override {
    return timed(seconds_);
  }

  [[nodiscard]] Kernel make_kernel(std::span<const Storage>, Storage,
                                   const RngState&) const override {
    const bool free = first_launch_free_.exchange(false);
    // The sim runs no code; on host this kernel would do nothing (replay is sim-only).
    return Kernel{name_, timed(free ? 0.0 : seconds_), [] {}, {}};
  }

  static KernelCost timed(double seconds) {
    KernelCost c;
    c.seconds = seconds;
    return c;
  }

 private:
  std::string name_;
  double seconds_;
  mutable std::atomic<bool> first_launch_free_;
};

class Replay {
 public:
  Replay(const ReplayLog& log, const ReplayOptions& o, Backend& backend, Runtime& rt)
      : log_(log), options_(o), backend_(backend), rt_(rt), ids_(log.tensors.size()) {}

  void run(ReplayResult& r) {
    const double thrash_limit = options_.thrash_factor * log_.total_seconds;
    rt_.begin_step();
    for (const Instruction& in : log_.program) {
      execute(in);
      ++r.instructions_done;
      if (log_.total_seconds > 0 && rt_.counters().recompute_seconds > thrash_limit) {
        r.thrashed = true;
        r.error = fmt::format(
            "thrashing: recompute time {:.6g} s exceeded {}x the baseline compute of {:.6g} s "
            "after {} of {} instructions; stopped",
            rt_.counters().recompute_seconds, options_.thrash_factor, log_.total_seconds,
            r.instructions_done, log_.program.size());
        return;
      }
    }
    // Outputs must be resident at the end, all at once: pin them together.
    std::vector<TensorId> pinned;
    try {
      for (std::size_t t : log_.outputs)
        if (log_.tensors[t].bytes > 0) {
          (void)rt_.use(ids_[t]);
          pinned.push_back(ids_[t]);
        }
    } catch (...) {
      for (TensorId id : pinned) rt_.release(id);
      throw;
    }
    for (TensorId id : pinned) rt_.release(id);
    const StepStats s = rt_.end_step();
    r.fits = true;
    r.seconds = s.seconds;
    r.peak_bytes = s.peak_reserved;
    r.peak_allocated = s.peak_allocated;
    r.stall_s = s.stalled_seconds;
  }

 private:
  std::vector<TensorId> inputs(const Instruction& call) const {
    std::vector<TensorId> out;
    // A zero-byte tensor has no storage for the runtime to track: it is not an input.
    for (std::size_t t : call.args)
      if (log_.tensors[t].bytes > 0) out.push_back(ids_[t]);
    return out;
  }

  void execute(const Instruction& in) {
    switch (in.kind) {
      case Instruction::Kind::constant:
        if (const std::size_t b = log_.tensors[in.tensor].bytes; b > 0)
          ids_[in.tensor] = rt_.constant(b);
        return;
      case Instruction::Kind::free:
        if (log_.tensors[in.tensor].bytes > 0) free(in.tensor);
        return;
      case Instruction::Kind::call:
        return call(in);
    }
  }

  void free(std::size_t tensor) {
    const TensorId id = ids_[tensor];
    rt_.free(id);
    // The old version of a constant an optimizer step overwrote: the real run's storage now
    // holds the new values, so nothing may be recomputed from it. Live tensors whose recipes
    // read it (parameter gradients, through activations) keep their data and lose their
    // recipes, and the old version's memory goes back, as the log's peak counts it.
    const LogTensor& t = log_.tensors[tensor];
    if (t.constant && t.overwritten && rt_.tracks(id)) rt_.forget_recipes_reading(id);
  }

  void call(const Instruction& in) {
    const LogOp& op = log_.ops[in.op];
    const std::vector<TensorId> args = inputs(in);
    std::size_t computed = 0;
    for (std::size_t t : in.results) {
      if (log_.tensors[t].bytes == 0 || log_.tensors[t].constant) continue;
      auto replay_op = std::make_shared<ReplayOp>(op.name, op.seconds, computed > 0);
      ids_[t] = rt_.compute(std::move(replay_op), args, log_.tensors[t].bytes, {in.op, computed});
      ++computed;
    }
    if (computed == 0) launch(op, args);
    // New versions of constants: never evicted, so they have no recipe (created after the
    // operator ran, as the log's peak counts them: before the old versions are released).
    for (std::size_t t : in.results)
      if (log_.tensors[t].bytes > 0 && log_.tensors[t].constant)
        ids_[t] = rt_.constant(log_.tensors[t].bytes);
  }

  // An operator with no computed result of its own (a view, or an in-place update of
  // parameters) still reads its arguments and takes its time.
  void launch(const LogOp& op, const std::vector<TensorId>& args) {
    std::size_t used = 0;
    try {
      for (; used < args.size(); ++used) (void)rt_.use(args[used]);
      backend_.launch(rt_.compute_stream(),
                      Kernel{op.name, ReplayOp::timed(op.seconds), [] {}, {}});
    } catch (...) {
      for (std::size_t i = 0; i < used; ++i) rt_.release(args[i]);
      throw;
    }
    for (TensorId id : args) rt_.release(id);
  }

  const ReplayLog& log_;
  const ReplayOptions& options_;
  Backend& backend_;
  Runtime& rt_;
  std::vector<TensorId> ids_;
};

}  // namespace

const char* to_string(MemoryModel model) noexcept {
  return model == MemoryModel::counted ? "counted" : "allocator";
}

ReplayResult run_replay(const ReplayLog& log, const ReplayOptions& o) {
  DeviceProfile profile = o.profile;
  profile.launch_latency = 0;  // see ReplayOptions::profile
  std::unique_ptr<Backend> backend = make_sim_backend(profile);
  MEMENTO_EXPECTS(o.budget <= profile.capacity,
                  fmt::format("budget {} exceeds the capacity {} of sim:{}", format_bytes(o.budget),
                              format_bytes(profile.capacity), profile.name),
                  ConfigError);
  AllocatorOptions aopt;
  aopt.budget = o.budget;
  aopt.exact_segments = o.memory_model == MemoryModel::counted;
  CachingAllocator alloc(*backend, aopt);
  PinnedHostPool pool(*backend, o.host_budget);
  RuntimeOptions ropt;
  ReplayResult r;
  r.baseline_seconds = log.total_seconds;
  {
    Runtime rt(*backend, alloc, &pool, make_policy(o.policy), ropt);
    try {
      Replay(log, o, *backend, rt).run(r);
    } catch (const OutOfMemory& e) {
      r.error = e.what();
    }
    const RuntimeCounters c = rt.counters();
    r.evictions = c.discards + c.offloads;
    r.recomputes = c.recomputes;
    r.recompute_seconds = c.recompute_seconds;
    r.bytes_offloaded = c.bytes_offloaded;
  }
  if (!r.fits) {
    r.peak_bytes = alloc.stats().reserved.peak;
    r.peak_allocated = alloc.stats().allocated.peak;
  } else if (log.total_seconds > 0) {
    r.slowdown = r.seconds / log.total_seconds;
  }
  return r;
}

}  // namespace memento::replay
