// Steps, the prefetcher and checkpointed segments.
#include <fmt/format.h>

#include <algorithm>

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
  offloaded_.clear();
  ordinal_.clear();
  by_ordinal_.clear();
  order_.clear();
  cursor_ = 0;
  allocator_.reset_peaks();
}

StepStats Runtime::end_step() {
  std::lock_guard lock(mutex_);
  MEMENTO_EXPECTS(in_step_, "end_step without begin_step");
  backend_.synchronize_all();
  in_step_ = false;
  StepStats s;
  s.counters = minus(counters_, step_base_);
  s.prefetches_ahead = prefetches_ahead_;
  AllocatorStats a = allocator_.stats();
  s.peak_allocated = a.allocated.peak;
  s.peak_reserved = a.reserved.peak;
  s.seconds = backend_.now() - step_start_;
  if (std::optional<double> stall = backend_.stalled_seconds(compute_); stall && stall_base_)
    s.stalled_seconds = *stall - *stall_base_;
  if (s.stalled_seconds && s.counters.offloads > 0)
    stall_per_offload_ = *s.stalled_seconds / static_cast<double>(s.counters.offloads);
  last_order_ = std::move(order_);
  last_offloaded_ = std::move(offloaded_);
  offloaded_.clear();
  if (trace_)
    trace_->complete(fmt::format("step {}", steps_), "step", "steps", step_start_, s.seconds,
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
  order_.push_back({it->second, step_work_, registry_->at(id).desc.bytes});
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
  // Look ahead over the next uses of the previous step, up to a lookahead's worth of the
  // bytes they touch (whatever their state), and copy back the evicted ones among them.
  // At most half the budget, so copies back never crowd out the step's own working set.
  const std::size_t lookahead =
      std::min(options_.prefetch_lookahead_bytes, allocator_.budget() / 2);
  std::size_t ahead = 0;
  for (std::size_t i = cursor_; i < last_order_.size(); ++i) {
    // Uses of tensors not created yet count too: the window is the next uses, not the
    // next uses of what exists.
    ahead += last_order_[i].bytes;
    if (ahead > lookahead) break;
    std::size_t ord = last_order_[i].ordinal;
    if (ord >= by_ordinal_.size() || !registry_->contains(by_ordinal_[ord])) continue;
    TensorId id = by_ordinal_[ord];
    const TrackedTensor& t = registry_->at(id);
    if (t.state != Residency::on_host && t.state != Residency::offloading) continue;
    try {
      prefetch(id);
    } catch (const OutOfMemory&) {
      return;  // best effort: the use itself will bring it back
    }
    registry_->touch(id);  // about to be used: not the stalest any more
    ++prefetches_ahead_;
  }
}

double Runtime::next_use_seconds(TensorId id) const {
  auto it = ordinal_.find(id);
  if (!in_step_ || it == ordinal_.end()) return -1;
  for (std::size_t i = cursor_; i < last_order_.size(); ++i)
    if (last_order_[i].ordinal == it->second && last_order_[i].seconds >= step_work_)
      return last_order_[i].seconds - step_work_;
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
