// The runtime: tracked activations that leave device memory under the allocator's budget,
// by discard (recomputed from their recipe on use) or by offload (copied to pinned host
// memory, copied back on use), and come back bit-identical.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "memento/backend.hpp"
#include "memento/caching_allocator.hpp"
#include "memento/error.hpp"
#include "memento/op.hpp"
#include "memento/pinned_host_pool.hpp"
#include "memento/policy.hpp"
#include "memento/residency.hpp"
#include "memento/step_plan.hpp"

namespace memento {

class TensorRegistry;
struct TensorDesc;
class ChromeTrace;
class KernelTimer;
struct TrackedTensor;
struct StepGraph;
struct StepPlan;

struct RuntimeCounters {
  std::size_t discards = 0;           ///< evictions by discard
  std::size_t offloads = 0;           ///< evictions by offload
  std::size_t offload_fallbacks = 0;  ///< offloads turned into discards: host pool full
  std::size_t early_offloads = 0;     ///< offloads started after a last use, before pressure
  std::size_t bytes_offloaded = 0;
  std::size_t bytes_prefetched = 0;
  std::size_t recomputes = 0;
  double recompute_flops = 0;
  /// Modelled seconds of the recomputes (the cost model's, so a measured kernel's own time):
  /// what a replay weighs against the baseline compute to call a run thrashing.
  double recompute_seconds = 0;
};

/// What one step (begin_step .. end_step) did.
struct StepStats {
  RuntimeCounters counters;          ///< this step's share of the counters
  std::size_t prefetches_ahead = 0;  ///< copies back issued by the prefetcher before use
  std::size_t peak_allocated = 0;    ///< allocator peaks during the step
  std::size_t peak_reserved = 0;
  double seconds = 0;  ///< backend clock (virtual on sim)
  /// Seconds the compute stream waited for copies (device-side waits on the copy streams
  /// and on memory an offload still read); std::nullopt where the backend cannot tell.
  std::optional<double> stalled_seconds;
  /// With RuntimeOptions::plan_from_observation: whether the step was observed (the dynamic
  /// policy alone) or ran under a plan, and that plan (for an observed step, the one it led
  /// to). Bytes the dynamic policy evicted under pressure on top of the plan.
  StepPhase phase = StepPhase::dynamic;
  std::optional<StepPlanSummary> plan;
  bool replanned = false;  ///< `plan` was made at the end of this step (from this step)
  std::size_t unplanned_evicted_bytes = 0;
};

/// The part of a step a kernel belongs to, for the trace's device spans.
enum class KernelPhase { forward, backward, recompute, optimizer, other };
/// "forward", "backward", "recompute", "optimizer", "other".
const char* to_string(KernelPhase phase) noexcept;

/// What Runtime::launch's caller knows about a kernel, for the trace (nothing else reads it).
struct LaunchTag {
  KernelPhase phase = KernelPhase::other;
  std::string_view op{};  ///< the op whose backward (say) this is; empty: none
};

struct RuntimeOptions {
  /// Rates that turn an op's cost into the seconds policies weigh, with the roofline the
  /// sim backend uses. 0: the backend's DeviceInfo; where that is unknown too (host, cuda),
  /// 1e12 FLOP/s and 1e12 bytes/s (only ratios between ops matter then).
  double matrix_flops = 0;
  double vector_flops = 0;
  double memory_bandwidth = 0;
  /// Host link rates (bytes/s) the policies and the early offload weigh copies with. 0: the
  /// backend's DeviceInfo; 0 there too means unknown.
  double d2h_bandwidth = 0;
  double h2d_bandwidth = 0;
  /// Offload, right after its last use before a gap long enough to hide the copy out and
  /// back, a tensor the previous step had to offload under pressure (learnt per creation
  /// order), so the copy overlaps compute instead of stalling the allocation that needs it.
  bool early_offload = true;
  /// Where to write a Chrome trace (Perfetto) of compute, recompute, evictions, copies and
  /// device memory, on the backend clock (virtual on sim), and every kernel launched
  /// through the runtime as a span of its device time (docs/DESIGN.md, "Trace"). Empty: no
  /// trace. The runtime reads no environment: entry points pass MEMENTO_TRACE here (see
  /// config.hpp).
  std::string trace_file{};
  /// The prefetcher keeps at most this many bytes of copies back in flight ahead of use.
  std::size_t prefetch_lookahead_bytes = std::size_t{1} << 30;
  /// The budget-only path: observe a step (the dynamic policy handles its pressure), plan
  /// keep / offload / recompute per tensor for the budget on what it saw, and apply the plan
  /// from the next step on (memento/step_plan.hpp). It plans again when the step changes
  /// (other tensors or uses), when the budget changes, or when the dynamic policy has to
  /// evict more than a tenth of the planned bytes on top of the plan.
  bool plan_from_observation = false;
};

class Runtime {
 public:
  /// Registers itself as `allocator`'s pressure handler. `host_pool` may be null (no
  /// offloading: every eviction discards).
  Runtime(Backend& backend, CachingAllocator& allocator, PinnedHostPool* host_pool,
          std::unique_ptr<Policy> policy, RuntimeOptions options = {});
  ~Runtime();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  /// A tensor that is never evicted (an input or a parameter); write it through use().
  TensorId constant(std::size_t bytes);

  /// Runs `op` on the compute stream over `inputs` into a new tensor of `output_bytes`
  /// and records the recipe, so the result can be discarded and recomputed.
  TensorId compute(std::shared_ptr<const Op> op, const std::vector<TensorId>& inputs,
                   std::size_t output_bytes, RngState rng = {});

  /// Launches a kernel that is not an op with a recipe (a backward, an optimizer update) on
  /// `stream`. On the compute stream its modelled time counts in the step's timeline, which
  /// the prefetcher and the budget-only path's plan time copies against. `tag` names it in
  /// the trace.
  void launch(Stream stream, Kernel kernel, LaunchTag tag = {});

  /// Pins the tensor and returns its device storage, bringing it back first if it was
  /// evicted (waits for or issues copies, or recomputes it). Pair with release().
  [[nodiscard]] void* use(TensorId id);
  void release(TensorId id);

  /// The caller is done with the tensor. Its memory goes back at once; its record stays
  /// while the recipe of a live tensor still needs it.
  void free(TensorId id);

  /// `id`'s data is about to be overwritten in place (an optimizer step on a parameter):
  /// no recipe may read it any more. Every tracked tensor whose recipe reads `id`, directly
  /// or through tensors the caller already freed (which could then not be recomputed either),
  /// loses its recipe: a live one becomes a plain tensor that cannot be discarded (it may
  /// still be offloaded), and if it was discarded it is recomputed first, from the data its
  /// recipe reads now. Freed tensors no live recipe needs any more, `id` included when it
  /// was freed, are then erased as free() would have.
  void forget_recipes_reading(TensorId id);

  /// Evicts a resident, unpinned, evictable tensor now (a static plan's decision): discard
  /// needs a recipe; an offload without host memory discards instead. Returns the bytes
  /// freed, 0 when the tensor cannot be evicted (pinned, not resident, not evictable).
  std::size_t evict_now(TensorId id, EvictAction action);

  /// Runs `fn` (which builds part of the graph from `inputs`) and then discards every
  /// activation it produced except the tensors it returns, like torch.utils.checkpoint:
  /// they are recomputed on access.
  std::vector<TensorId> checkpoint(
      const std::function<std::vector<TensorId>(const std::vector<TensorId>&)>& fn,
      const std::vector<TensorId>& inputs);

  /// Marks a tensor as part of a region (a block; -1: none) with a role, for the plan
  /// candidates (see set_plan_candidates). LogicError for an unknown id.
  void mark(TensorId id, int region, std::string_view role);
  /// Starting points the planner of the budget-only path searches from, besides nothing
  /// (e.g. memento's static planners' plans for the model). Takes effect at the next plan.
  void set_plan_candidates(std::vector<PlanCandidate> candidates);
  /// The plan in force (plan_from_observation), if one has been made.
  [[nodiscard]] std::optional<StepPlanSummary> plan() const;

  /// Delimit a training step. The prefetcher learns the order in which a step uses its
  /// tensors (by creation order within the step, so the same program gives the same
  /// keys) and, in the next step, copies offloaded tensors back ahead of their use.
  void begin_step();
  StepStats end_step();

  /// After an AsyncBackendError the caller caught itself (from its own synchronize of the
  /// backend): what the runtime's queued work produced or moved since the last clean
  /// synchronization (end_step) cannot be trusted. A tensor with a recipe is discarded, to
  /// be recomputed bit-identically on use; one without (an offloaded plain tensor, a copy
  /// back of one) is lost: use() then raises DataLost naming it. Returns a report of what
  /// was done. The runtime's own calls do this before they rethrow such an error (as a
  /// BackendError whose message carries the report).
  std::string recover_from_async_error();
  /// Whether the tensor's data was lost (see recover_from_async_error).
  [[nodiscard]] bool lost(TensorId id) const;

  [[nodiscard]] Residency state(TensorId id) const;
  /// Whether the runtime still has a record of the tensor (freed tensors keep theirs while
  /// a live recipe needs them).
  [[nodiscard]] bool tracks(TensorId id) const;
  [[nodiscard]] RuntimeCounters counters() const;
  [[nodiscard]] Stream compute_stream() const noexcept { return compute_; }
  /// Writes the trace file now (it is also written when the runtime is destroyed), with the
  /// device spans of the kernels that have completed; a no-op without a trace.
  /// memento::Error when the file cannot be written.
  void flush_trace();
  /// Whether the runtime writes a trace.
  [[nodiscard]] bool tracing() const noexcept { return trace_ != nullptr; }
  /// A span of host work done outside the runtime (a CPU optimizer step) from `start` (on
  /// the backend clock, Backend::now()) to now, on the trace's track `track`, category
  /// `category`. A no-op without a trace.
  void trace_host_span(std::string_view name, std::string_view category, std::string_view track,
                       double start);

 private:
  struct Copy {  // an in-flight copy
    Event done;
  };

  struct OpRun {
    void* output = nullptr;
    KernelCost cost;
  };
  /// Launches `op` on the compute stream over resident, pinned `inputs` into a new block.
  OpRun run_op(const Op& op, const std::vector<TensorId>& inputs, std::size_t output_bytes,
               const RngState& rng, KernelPhase phase);
  /// Registers a new tensor, numbering it within the current step.
  TensorId track(TensorDesc desc, void* device);
  std::size_t on_pressure(std::size_t bytes_needed);
  PolicyContext policy_context() const;
  /// Compute seconds of the discarded ancestors a recompute of `t` would rerun first.
  double evicted_inputs_seconds(const TrackedTensor& t) const;
  /// Evicts a resident, unpinned tensor; returns the bytes freed. With `fallback`, an
  /// offload without host memory discards instead (when there is a recipe).
  std::size_t evict(TensorId id, EvictAction action, bool fallback = true);
  /// Roofline seconds of a kernel of this cost with the options' rates.
  double modelled_seconds(const KernelCost& cost) const;
  void offload_early(TensorId id);
  void materialize(TensorId id);
  void recompute(TensorId id);
  /// Starts the copy back of an offloaded tensor (state Prefetching). `early`: only into
  /// memory free as things stand (CachingAllocator::try_allocate); false when there is none.
  bool prefetch(TensorId id, bool early = false);
  /// Makes the compute stream wait for a prefetch's copy; the tensor is then Resident.
  void finish_prefetch(TensorId id);
  void drop(TensorId id);
  void free_locked(TensorId id);
  void forget_recipes_locked(TensorId id);
  /// Runs `fn`; an AsyncBackendError it raises is answered by recovery (recovery.cpp) and
  /// rethrown as a BackendError carrying the report.
  template <class F>
  decltype(auto) guarded(F&& fn);
  [[noreturn]] void rethrow_recovered(const AsyncBackendError& e);
  std::string recover_locked();
  /// The tensor's data comes from work queued now: suspect until the next clean sync.
  void note_unverified(TensorId id);
  void note_use(TensorId id);
  void prefetch_ahead();
  double next_use_seconds(TensorId id) const;
  // The budget-only path (planned_steps.cpp).
  void observe_point();
  void observe_eviction();
  double other_bytes_now();
  void observe_tensor(TensorId id);
  void observe_use(std::size_t ordinal);
  void observe_free(TensorId id);
  void apply_plan(TensorId id);
  void begin_planned_step();
  void end_planned_step(StepStats& stats);
  void make_plan(const StepGraph& graph);
  void forget_measured_plans();
  /// Launches `kernel` on the backend, timed for the trace when tracing.
  void launch_traced(Stream stream, Kernel kernel, LaunchTag tag);
  /// Emits the device spans of the kernels that have completed; with `idle`, every stream
  /// is idle (after a synchronize).
  void resolve_kernel_spans(bool idle);
  /// Trace hooks: no-ops without a trace.
  void trace_span(const char* category, std::string_view name, double start, TensorId id,
                  std::size_t bytes);
  void trace_instant(const char* category, std::string_view name, TensorId id, std::size_t bytes);
  void trace_memory();

  Backend& backend_;
  CachingAllocator& allocator_;
  PinnedHostPool* host_pool_;
  std::unique_ptr<Policy> policy_;
  RuntimeOptions options_;
  Stream compute_;
  Stream d2h_;
  Stream h2d_;
  mutable std::recursive_mutex mutex_;  // the pressure handler re-enters on this thread
  std::unique_ptr<TensorRegistry> registry_;
  std::unordered_map<TensorId, Copy> offloads_;    // in-flight copies out
  std::unordered_map<TensorId, Copy> prefetches_;  // in-flight copies back
  std::vector<TensorId> freed_;                    // freed by the caller, kept for live recipes
  std::vector<TensorId> unverified_;  // produced or moved by work queued since the last sync
  int guard_depth_ = 0;               // nesting of guarded() calls
  RuntimeCounters counters_;
  int handler_id_ = 0;
  std::unique_ptr<ChromeTrace> trace_;
  std::unique_ptr<KernelTimer> kernel_timer_;  // with trace_: device spans of kernels
  std::size_t steps_ = 0;

  // Step state and the prefetcher. Keys are creation ordinals within a step.
  bool in_step_ = false;
  double step_start_ = 0;
  RuntimeCounters step_base_;
  std::size_t prefetches_ahead_ = 0;
  std::optional<double> stall_base_;
  double step_work_ = 0;    // modelled compute seconds launched in this step
  double launch_work_ = 0;  // ... by launch() (backward, optimizer) on compute_
  /// The step's clock for the prefetcher: its ops' modelled seconds, and with
  /// plan_from_observation the other kernels' too (the dynamic-only path keeps the clock
  /// its figures were measured with; see docs/DESIGN.md).
  double work_clock() const {
    return step_work_ + (options_.plan_from_observation ? launch_work_ : 0);
  }
  double stall_per_offload_ = 0;      // learnt: see PolicyContext::stall_per_offload
  std::vector<bool> offloaded_;       // by ordinal: offloaded in this step
  std::vector<bool> last_offloaded_;  // ... in the previous step
  std::unordered_map<TensorId, std::size_t> ordinal_;  // this step's tensors
  std::vector<TensorId> by_ordinal_;
  struct Access {
    std::size_t ordinal;
    double seconds;  // modelled compute seconds of the step before this use
    std::size_t bytes;
    std::size_t active;  // the allocator's active bytes at the use
  };
  std::vector<Access> order_;       // this step's uses
  std::vector<Access> last_order_;  // the previous step's uses
  std::size_t cursor_ = 0;          // position in last_order_
  bool order_frozen_ = false;       // last_order_ is the plan's first step's: kept

  // The budget-only path (plan_from_observation).
  std::unique_ptr<StepGraph> observed_;    // this step, as it runs
  std::unique_ptr<StepGraph> plan_graph_;  // the step the plan was made from
  std::unique_ptr<StepPlan> plan_;
  std::vector<PlanCandidate> candidates_;
  bool plan_in_force_ = false;       // this step follows the plan so far
  std::vector<std::size_t> uses_;    // this step's uses so far, by ordinal
  std::size_t device_base_ = 0;      // tracked device bytes at begin_step
  double recompute_work_ = 0;        // modelled seconds of this step's recomputes
  std::size_t begin_allocated_ = 0;  // allocator bytes at begin_step
  double pending_other_ = 0;         // other bytes of windows closed by evictions
  std::size_t planned_bytes_ = 0;    // evicted by the plan in this step
  std::size_t pressure_bytes_ = 0;   // evicted by the dynamic policy in this step
  double plan_margin_ = 0.05;
  bool warned_thrash_ = false;
  // Settling: the fastest plan measured for this program and budget; plans made because
  // the dynamic policy overflowed are tried at most kMaxReplans times, and one slower than
  // the best goes back to it for good.
  std::unique_ptr<StepPlan> best_plan_;
  double best_seconds_ = 0;
  double best_margin_ = 0;
  int overflow_replans_ = 0;
  bool overflow_plan_ = false;  // plan_ was made because the dynamic policy overflowed
  bool settled_ = false;
  bool plan_changed_ = false;  // made before this step (a new budget)
};

template <class F>
decltype(auto) Runtime::guarded(F&& fn) {
  // Only the outermost guarded call recovers: by then the inner calls have unwound and
  // unpinned what they pinned, so only the caller's own uses are still pinned.
  struct Depth {
    int& d;
    explicit Depth(int& depth) : d(++depth) {}
    ~Depth() { --d; }
  } depth(guard_depth_);
  try {
    return fn();
  } catch (const AsyncBackendError& e) {
    if (guard_depth_ > 1) throw;
    rethrow_recovered(e);
  }
}

}  // namespace memento
