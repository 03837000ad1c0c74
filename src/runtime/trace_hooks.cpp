// The runtime's Chrome trace: what it computed, recomputed, evicted and copied back, and
// device memory over time, on the backend clock.
#include <fmt/format.h>

#include <algorithm>

#include "memento/runtime.hpp"
#include "runtime/kernel_timer.hpp"
#include "runtime/trace_args.hpp"
#include "trace/chrome_trace.hpp"

namespace memento {

TraceArgs tensor_trace_args(TensorId id, std::size_t bytes) {
  return {{"tensor", id}, {"bytes", bytes}};
}

TraceArgs step_trace_args(std::size_t evictions, std::size_t recomputes, std::size_t peak) {
  return {{"evictions", evictions}, {"recomputes", recomputes}, {"peak_allocated", peak}};
}

void Runtime::trace_span(const char* category, std::string_view name, double start, TensorId id,
                         std::size_t bytes) {
  if (!trace_) return;
  trace_->complete(name, category, category, start, backend_.now() - start,
                   tensor_trace_args(id, bytes));
}

void Runtime::trace_instant(const char* category, std::string_view name, TensorId id,
                            std::size_t bytes) {
  if (!trace_) return;
  trace_->instant(name, category, category, backend_.now(), tensor_trace_args(id, bytes));
}

void Runtime::trace_memory() {
  if (!trace_) return;
  AllocatorStats s = allocator_.stats();
  double now = backend_.now();
  trace_->counter("device memory", now, "allocated", static_cast<double>(s.allocated.current));
  trace_->counter("device memory", now, "reserved", static_cast<double>(s.reserved.current));
}

void Runtime::trace_host_span(std::string_view name, std::string_view category,
                              std::string_view track, double start) {
  std::lock_guard lock(mutex_);
  if (!trace_) return;
  trace_->complete(name, category, track, start, std::max(0.0, backend_.now() - start));
}

void Runtime::resolve_kernel_spans(bool idle) {
  if (kernel_timer_) kernel_timer_->resolve(idle);
}

void Runtime::flush_trace() {
  std::lock_guard lock(mutex_);
  if (!trace_) return;
  resolve_kernel_spans(false);
  trace_->flush();
}

}  // namespace memento
