// The budget-only path in the runtime: recording the step as it runs (StepGraph), planning
// at its end (step_planner.hpp) and applying the plan at each release of the next steps.
#include <fmt/format.h>

#include <algorithm>
#include <utility>

#include "common/cpu_time.hpp"
#include "common/log.hpp"
#include "memento/bytes.hpp"
#include "memento/error.hpp"
#include "memento/runtime.hpp"
#include "runtime/step_planner.hpp"
#include "runtime/tensor_registry.hpp"

namespace memento {
namespace {

// The plan's margin grows by this much each time the dynamic policy had to evict more
// than a tenth of the planned bytes on top of it, up to kMaxMargin.
constexpr double kMarginStep = 0.03;
constexpr double kMaxMargin = 0.3;
// Plans made because the dynamic policy evicted on top of the plan, per program and budget.
constexpr int kMaxReplans = 2;
// A plan measured this much slower than the best one so far gives way to it.
constexpr double kSlower = 1.01;

}  // namespace

double Runtime::other_bytes_now() {
  // The bytes that are not this step's tensors: the most the allocator handed out since
  // the window began (a gradient made and freed between two points counts) less what this
  // step's tensors hold on the device now. Blocks an offload's copy still reads are not
  // counted: the plan models its own copies, and the dynamic policy's are not the plan's.
  const double tracked =
      static_cast<double>(registry_->device_bytes()) - static_cast<double>(device_base_);
  return static_cast<double>(allocator_.take_allocated_peak()) - tracked;
}

void Runtime::observe_eviction() {
  // An eviction ends the window before its memory goes: afterwards the tracked bytes no
  // longer hold the evicted tensor, while the window's peak still does.
  if (!options_.plan_from_observation || !in_step_) return;
  pending_other_ = std::max(pending_other_, other_bytes_now());
}

void Runtime::observe_point() {
  observed_->points.push_back(
      {step_work_ + launch_work_ - recompute_work_, std::max(pending_other_, other_bytes_now())});
  pending_other_ = 0;
}

void Runtime::observe_tensor(TensorId id) {
  if (!options_.plan_from_observation) return;
  const TrackedTensor& t = registry_->at(id);
  GraphTensor g;
  g.bytes = t.desc.bytes;
  g.seconds = t.desc.compute_seconds;
  g.recipe = t.desc.recipe.has_value();
  g.evictable = t.desc.evictable;
  if (t.desc.recipe)
    for (TensorId in : t.desc.recipe->inputs) {
      auto it = ordinal_.find(in);
      g.inputs.push_back(it == ordinal_.end() ? kNoPoint : it->second);
    }
  g.created = observed_->points.size();
  observe_point();
  const std::size_t ordinal = observed_->tensors.size();
  observed_->tensors.push_back(std::move(g));
  uses_.push_back(0);
  // Another program than the plan's: stop following it for the rest of the step.
  if (plan_in_force_) {
    const GraphTensor& now = observed_->tensors[ordinal];
    if (ordinal >= plan_graph_->tensors.size() || !plan_graph_->tensors[ordinal].same_tensor(now))
      plan_in_force_ = false;
  }
}

void Runtime::observe_use(std::size_t ordinal) {
  if (!options_.plan_from_observation) return;
  observed_->tensors[ordinal].uses.push_back(observed_->points.size());
  observe_point();
  ++uses_[ordinal];
}

void Runtime::observe_free(TensorId id) {
  if (!options_.plan_from_observation || !in_step_) return;
  auto it = ordinal_.find(id);
  if (it == ordinal_.end()) return;
  observed_->tensors[it->second].freed = observed_->points.size();
  observe_point();
}

void Runtime::mark(TensorId id, int region, std::string_view role) {
  std::lock_guard lock(mutex_);
  (void)registry_->at(id);
  if (!options_.plan_from_observation || !in_step_) return;
  auto it = ordinal_.find(id);
  if (it == ordinal_.end()) return;
  observed_->tensors[it->second].region = region;
  observed_->tensors[it->second].role = std::string(role);
}

void Runtime::set_plan_candidates(std::vector<PlanCandidate> candidates) {
  for (std::size_t i = 0; i < candidates.size(); ++i)
    MEMENTO_EXPECTS(static_cast<bool>(candidates[i].decide),
                    fmt::format("set_plan_candidates: candidate {} (\"{}\") has no decide "
                                "function",
                                i, candidates[i].name),
                    LogicError);
  std::lock_guard lock(mutex_);
  candidates_ = std::move(candidates);
}

std::optional<StepPlanSummary> Runtime::plan() const {
  std::lock_guard lock(mutex_);
  if (!plan_) return std::nullopt;
  return plan_->summary;
}

void Runtime::apply_plan(TensorId id) {
  auto it = ordinal_.find(id);
  if (it == ordinal_.end() || it->second >= plan_->decisions.size()) return;
  const std::size_t ordinal = it->second;
  const TensorDecision& d = plan_->decisions[ordinal];
  if (d.action == PlannedAction::keep || uses_[ordinal] != d.after_use + 1) return;
  const TrackedTensor& t = registry_->at(id);
  if (t.state != Residency::resident || t.pins > 0 || !t.desc.evictable) return;
  std::size_t freed = 0;
  if (d.action == PlannedAction::offload && host_pool_ != nullptr) {
    freed = evict(id, EvictAction::offload, /*fallback=*/false);
    if (freed > 0) ++counters_.early_offloads;
  }
  if (freed == 0 && registry_->at(id).desc.recipe) freed = evict(id, EvictAction::discard);
  planned_bytes_ += freed;
}

void Runtime::begin_planned_step() {
  if (!options_.plan_from_observation) return;
  if (!observed_) observed_ = std::make_unique<StepGraph>();
  observed_->clear();
  uses_.clear();
  device_base_ = registry_->device_bytes();
  recompute_work_ = 0;
  planned_bytes_ = 0;
  pressure_bytes_ = 0;
  pending_other_ = 0;
  (void)allocator_.take_allocated_peak();  // the first window starts now
  begin_allocated_ = allocator_.stats().allocated.current;
  // A new budget: plan again for it from the step already seen, before this one runs.
  if (plan_ && plan_->summary.budget_bytes != allocator_.budget()) {
    forget_measured_plans();
    make_plan(*plan_graph_);
    plan_changed_ = true;
  }
  plan_in_force_ = plan_ != nullptr;
  // A planned step starts from an empty cache: the segments the previous step left, cut to
  // its pattern, would otherwise make two steps' evictions take turns (measured on sim:
  // step times alternating by 8%). Free on sim and host; cudaFree / cudaMalloc on cuda.
  if (plan_in_force_) allocator_.release_cached();
}

void Runtime::end_planned_step(StepStats& s) {
  if (!options_.plan_from_observation) return;
  s.unplanned_evicted_bytes = pressure_bytes_;
  const bool followed = plan_in_force_ && observed_->same_program(*plan_graph_);
  plan_in_force_ = false;
  s.phase = followed ? StepPhase::planned : StepPhase::observed;
  const std::size_t planned =
      plan_ ? plan_->summary.offloaded_bytes + plan_->summary.discarded_bytes : 0;
  s.replanned = std::exchange(plan_changed_, false);
  if (followed && (!best_plan_ || s.seconds < best_seconds_)) {
    best_plan_ = std::make_unique<StepPlan>(*plan_);
    best_seconds_ = s.seconds;
    best_margin_ = plan_margin_;
  } else if (followed && overflow_plan_ && !settled_ && s.seconds > best_seconds_ * kSlower) {
    *plan_ = *best_plan_;  // the plan made after an overflow was slower: back for good
    plan_margin_ = best_margin_;
    settled_ = true;
    overflow_plan_ = false;
    s.replanned = true;  // a plan change: the next step learns from it afresh
  }
  const bool overflowed = followed && !settled_ && overflow_replans_ < kMaxReplans &&
                          pressure_bytes_ > std::max(planned / 10, allocator_.budget() / 100);
  if (overflowed) {
    plan_margin_ = std::min(kMaxMargin, plan_margin_ + kMarginStep);
    ++overflow_replans_;
  }
  if (!followed) forget_measured_plans();
  if (!followed || overflowed) {
    // Memory the step left allocated beyond what it started with (an optimizer's state
    // made at its first update) is there throughout the next steps: count it everywhere.
    const double left = static_cast<double>(allocator_.stats().allocated.current) -
                        static_cast<double>(begin_allocated_);
    if (left > 0)
      for (GraphPoint& p : observed_->points) p.other_bytes += left;
    try {
      make_plan(*observed_);
      std::swap(plan_graph_, observed_);
      overflow_plan_ = overflowed;
      s.replanned = true;
    } catch (const std::exception& e) {
      // The step's outcome stands (an OutOfMemory the caller is handling, say); planning
      // is tried again after the next step.
      log::warning(fmt::format("the plan for the next step could not be made: {}", e.what()));
    }
  }
  if (plan_) s.plan = plan_->summary;
}

void Runtime::forget_measured_plans() {
  best_plan_.reset();
  best_seconds_ = 0;
  overflow_replans_ = 0;
  settled_ = false;
}

void Runtime::make_plan(const StepGraph& graph) {
  const double start = thread_cpu_seconds();
  PlanInputs in;
  in.budget_bytes = static_cast<double>(allocator_.budget());
  in.margin = plan_margin_;
  // The link as the prefetcher uses it: copies back are given half again as long as the
  // link needs, so the plan counts on that much less (both ways: measured better on the
  // main job and the seed rows than derating the copies back alone).
  in.d2h_bandwidth = options_.d2h_bandwidth / kLinkDerate;
  in.h2d_bandwidth = options_.h2d_bandwidth / kLinkDerate;
  in.host_bytes = host_pool_ != nullptr ? static_cast<double>(host_pool_->stats().budget) : 0;
  auto plan = std::make_unique<StepPlan>(plan_step(graph, in, candidates_));
  plan->summary.plan_cpu_seconds = thread_cpu_seconds() - start;
  const StepPlanSummary& sum = plan->summary;
  if (sum.thrashing && !warned_thrash_) {
    warned_thrash_ = true;
    log::warning(fmt::format(
        "the budget of {} makes the step thrash: the plan recomputes or waits for {:.1f} ms "
        "on top of {:.1f} ms of compute (more than twice the step); {}",
        format_bytes(allocator_.budget()), sum.predicted_extra_seconds * 1e3,
        sum.observed_seconds * 1e3,
        sum.thrash_free_budget
            ? fmt::format("a budget of {} or more keeps it under twice",
                          format_bytes(*sum.thrash_free_budget))
            : std::string("no budget up to keeping every tensor keeps it under twice")));
  }
  plan_ = std::move(plan);
}

}  // namespace memento
