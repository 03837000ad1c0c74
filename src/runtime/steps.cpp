// Steps, the prefetcher and checkpointed segments.
#include <fmt/format.h>

#include <algorithm>
#include <unordered_set>

#include "memento/error.hpp"
#include "memento/runtime.hpp"
#include "runtime/tensor_registry.hpp"
#include "runtime/trace_args.hpp"
#include "trace/chrome_trace.hpp"

namespace memento {

namespace {
RuntimeCounters minus(const RuntimeCounters& a, const RuntimeCounters& b) {
  RuntimeCounters d;
  d.discards = a.discards - b.discards;
  d.offloads = a.offloads - b.offloads;
  d.offload_fallbacks = a.offload_fallbacks - b.offload_fallbacks;
  d.early_offloads = a.early_offloads - b.early_offloads;
  d.bytes_offloaded = a.bytes_offloaded - b.bytes_offloaded;
  d.bytes_prefetched = a.bytes_prefetched - b.bytes_prefetched;
  d.recomputes = a.recomputes - b.recomputes;
  d.recompute_flops = a.recompute_flops - b.recompute_flops;
  d.recompute_seconds = a.recompute_seconds - b.recompute_seconds;
  return d;
}
}  // namespace

void Runtime::begin_step() {
  std::lock_guard lock(mutex_);
  MEMENTO_EXPECTS(!in_step_, "begin_step: the previous step has not ended");
  in_step_ = true;
  step_start_ = backend_.now();
  step_base_ = counters_;
  prefetches_ahead_ = 0;
  stall_base_ = backend_.stalled_seconds(compute_);
  step_work_ = 0;
  launch_work_ = 0;
  offloaded_.clear();
  ordinal_.clear();
  by_ordinal_.clear();
  order_.clear();
  cursor_ = 0;
  try {
    // May plan for a new budget and give cached segments back first.
    guarded([&] { begin_planned_step(); });
  } catch (...) {
    in_step_ = false;
    throw;
  }
  allocator_.reset_peaks();
}

StepStats Runtime::end_step() {
  std::lock_guard lock(mutex_);
  MEMENTO_EXPECTS(in_step_, "end_step without begin_step");
  try {
    guarded([&] { backend_.synchronize_all(); });
  } catch (...) {
    in_step_ = false;  // the step is over, failed: the next begin_step starts afresh
    throw;
  }
  unverified_.clear();  // everything queued so far ran without a failure
  in_step_ = false;
  resolve_kernel_spans(true);
  StepStats s;
  s.counters = minus(counters_, step_base_);
  s.prefetches_ahead = prefetches_ahead_;
  AllocatorStats a = allocator_.stats();
  s.peak_allocated = a.allocated.peak;
  s.peak_reserved = a.reserved.peak;
  s.seconds = backend_.now() - step_start_;
  if (std::optional<double> stall = backend_.stalled_seconds(compute_); stall && stall_base_)
    s.stalled_seconds = *stall - *stall_base_;
  end_planned_step(s);
  // Under a plan the step learns once, from the first step that followed it, and then keeps
  // what it learnt while the plan stands: learning from each step again would let two
  // patterns take turns (each step's evictions teaching the next a different one).
  const bool frozen = s.phase == StepPhase::planned && !s.replanned && order_frozen_;
  order_frozen_ = s.phase == StepPhase::planned && !s.replanned;
  if (!frozen) {
    if (s.stalled_seconds && s.counters.offloads > 0)
      stall_per_offload_ = *s.stalled_seconds / static_cast<double>(s.counters.offloads);
    last_order_ = std::move(order_);
  }
  last_offloaded_ = std::move(offloaded_);
  offloaded_.clear();
  if (trace_)
    trace_->complete(s.phase == StepPhase::dynamic
                         ? fmt::format("step {}", steps_)
                         : fmt::format("step {} ({})", steps_, to_string(s.phase)),
                     "step", "steps", step_start_, s.seconds,
                     step_trace_args(s.counters.discards + s.counters.offloads,
                                     s.counters.recomputes, s.peak_allocated));
  ++steps_;
  order_.clear();
  return s;
}

void Runtime::note_use(TensorId id) {
  if (!in_step_) return;
  auto it = ordinal_.find(id);
  if (it == ordinal_.end()) return;  // created before the step: not part of its pattern
  order_.push_back(
      {it->second, work_clock(), registry_->at(id).desc.bytes, allocator_.active_bytes()});
  observe_use(it->second);
  // Follow the previous step: move past this use there, then copy back what comes next.
  for (std::size_t i = cursor_; i < last_order_.size(); ++i)
    if (last_order_[i].ordinal == it->second) {
      cursor_ = i + 1;
      break;
    }
  prefetch_ahead();
}

void Runtime::prefetch_ahead() {
  if (host_pool_ == nullptr) return;
  // Follow the previous step's next uses. The evicted tensors among the uses within a
  // lookahead's worth of the bytes they touch (whatever their state) are copied back now.
  // Beyond that window, a copy starts as late as it can while every copy after it still
  // arrives in time on the one link (with half again as long as the link needs, for
  // safety), so that long copies (large blocks offloaded whole) are not left until their
  // use is near; and only into memory free as things stand, when the previous step's
  // memory up to the use leaves room for it: a copy back that made the allocator evict
  // would trade one copy for another. What is copied back and not used yet stays under
  // half the budget, so copies back never crowd out the step's own working set.
  constexpr double kLinkSafety = 1.5;
  const std::size_t budget = allocator_.budget();
  const std::size_t lookahead = std::min(options_.prefetch_lookahead_bytes, budget / 2);
  const double link = backend_.info().h2d_bandwidth;
  struct Later {
    TensorId id;
    std::size_t bytes;
    double until;       // modelled seconds until its use
    std::size_t peak;   // the previous step's most active bytes up to its use
    double latest = 0;  // when its copy must start, counting the copies after it
  };
  std::vector<Later> later;
  std::unordered_set<TensorId> seen;  // each tensor once, at its next use
  // Every evicted byte sits in the host pool: a use further away than the link needs for
  // all of them (with the safety) cannot make any copy due, so the scan stops there.
  const double horizon = kLinkSafety * static_cast<double>(host_pool_->in_use_bytes()) / link;
  std::size_t ahead = 0;
  std::size_t peak = 0;
  std::size_t early = 0;  // bytes copied back (or on their way) for uses not reached yet
  for (std::size_t i = cursor_; i < last_order_.size(); ++i) {
    // Uses of tensors not created yet count too: the window is the next uses, not the
    // next uses of what exists.
    ahead += last_order_[i].bytes;
    peak = std::max(peak, last_order_[i].active);
    if (ahead > lookahead && !(link > 0 && last_order_[i].seconds - work_clock() <= horizon)) break;
    const std::size_t ord = last_order_[i].ordinal;
    if (ord >= by_ordinal_.size() || !registry_->contains(by_ordinal_[ord])) continue;
    const TensorId id = by_ordinal_[ord];
    if (!seen.insert(id).second) continue;
    const TrackedTensor& t = registry_->at(id);
    if (t.state == Residency::prefetching) early += t.desc.bytes;
    if (t.state != Residency::on_host && t.state != Residency::offloading) continue;
    if (ahead > lookahead) {
      later.push_back({id, t.desc.bytes, last_order_[i].seconds - work_clock(), peak});
      continue;
    }
    if (early + t.desc.bytes > budget / 2) return;
    try {
      prefetch(id);
    } catch (const OutOfMemory&) {
      return;  // best effort: the use itself will bring it back
    }
    early += t.desc.bytes;
    registry_->touch(id);  // about to be used: not the stalest any more
    ++prefetches_ahead_;
  }
  double latest = INFINITY;
  for (auto it = later.rbegin(); it != later.rend(); ++it) {
    latest = std::min(latest, it->until) - kLinkSafety * static_cast<double>(it->bytes) / link;
    it->latest = latest;
  }
  // The copies back already issued go first on the link (those arrived count too: an
  // earlier start, never a late one).
  const double queued = kLinkSafety * static_cast<double>(early) / link;
  for (const Later& l : later) {
    if (l.latest > queued || early + l.bytes > budget / 2 ||
        l.peak + early + l.bytes + lookahead > budget)
      return;
    if (!prefetch(l.id, true)) return;
    early += l.bytes;
    registry_->touch(l.id);
    ++prefetches_ahead_;
  }
}

double Runtime::next_use_seconds(TensorId id) const {
  auto it = ordinal_.find(id);
  if (!in_step_ || it == ordinal_.end()) return -1;
  for (std::size_t i = cursor_; i < last_order_.size(); ++i)
    if (last_order_[i].ordinal == it->second && last_order_[i].seconds >= work_clock())
      return last_order_[i].seconds - work_clock();
  return -1;
}

std::vector<TensorId> Runtime::checkpoint(
    const std::function<std::vector<TensorId>(const std::vector<TensorId>&)>& fn,
    const std::vector<TensorId>& inputs) {
  std::lock_guard lock(mutex_);
  TensorId first = registry_->next_id();
  std::vector<TensorId> outputs = fn(inputs);
  TensorId last = registry_->next_id();
  for (TensorId id = first; id < last; ++id) {
    if (!registry_->contains(id) || std::find(outputs.begin(), outputs.end(), id) != outputs.end())
      continue;
    const TrackedTensor& t = registry_->at(id);
    if (t.state == Residency::resident && t.pins == 0 && t.desc.evictable && t.desc.recipe)
      evict(id, EvictAction::discard);
  }
  return outputs;
}

}  // namespace memento
