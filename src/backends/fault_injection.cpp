#include "memento/fault_injection.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <random>

#include "memento/error.hpp"

namespace memento {

const char* to_string(FaultSite site) noexcept {
  switch (site) {
    case FaultSite::segment_allocation:
      return "segment allocation";
    case FaultSite::pinned_allocation:
      return "pinned allocation";
    case FaultSite::copy:
      return "copy";
    case FaultSite::event_record:
      return "event record";
    case FaultSite::event_wait:
      return "event wait";
    case FaultSite::kernel_launch:
      return "kernel launch";
    case FaultSite::host_launch:
      return "host task launch";
  }
  return "unknown";
}

const char* to_string(FaultMode mode) noexcept {
  switch (mode) {
    case FaultMode::refuse:
      return "refused";
    case FaultMode::throws:
      return "thrown";
    case FaultMode::async:
      return "asynchronous";
  }
  return "unknown";
}

namespace {

bool is_allocation(FaultSite site) {
  return site == FaultSite::segment_allocation || site == FaultSite::pinned_allocation;
}

}  // namespace

std::vector<Fault> random_faults(std::uint64_t seed, std::size_t count,
                                 const std::array<std::size_t, kFaultSites>& calls) {
  std::vector<FaultSite> sites;
  for (std::size_t i = 0; i < kFaultSites; ++i)
    if (calls[i] > 0) sites.push_back(static_cast<FaultSite>(i));
  std::vector<Fault> faults;
  if (sites.empty()) return faults;
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<std::size_t> pick(0, sites.size() - 1);
  std::uniform_int_distribution<int> coin(0, 1);
  for (std::size_t i = 0; i < count; ++i) {
    const FaultSite site = sites[pick(rng)];
    std::uniform_int_distribution<std::size_t> nth(1, calls[static_cast<std::size_t>(site)]);
    Fault f{site, nth(rng), FaultMode::throws};
    if (coin(rng) == 1) f.mode = is_allocation(site) ? FaultMode::refuse : FaultMode::async;
    faults.push_back(f);
  }
  return faults;
}

FaultInjectingBackend::FaultInjectingBackend(Backend& inner, std::vector<Fault> faults)
    : inner_(inner), faults_(std::move(faults)) {
  for (const Fault& f : faults_) {
    MEMENTO_EXPECTS(f.nth > 0,
                    fmt::format("fault at {}: nth counts calls from 1, not 0", to_string(f.site)),
                    LogicError);
    MEMENTO_EXPECTS(f.mode != FaultMode::refuse || is_allocation(f.site),
                    fmt::format("fault at {}: only allocations can be refused; accepted: "
                                "throws or async",
                                to_string(f.site)),
                    LogicError);
    MEMENTO_EXPECTS(f.mode != FaultMode::async || !is_allocation(f.site),
                    fmt::format("fault at {}: an allocation cannot fail asynchronously; "
                                "accepted: refuse or throws",
                                to_string(f.site)),
                    LogicError);
  }
}

void FaultInjectingBackend::disarm() {
  std::lock_guard lock(mutex_);
  armed_ = false;
}

std::size_t FaultInjectingBackend::injected() const {
  std::lock_guard lock(mutex_);
  return log_.size();
}

std::vector<std::string> FaultInjectingBackend::injected_log() const {
  std::lock_guard lock(mutex_);
  return log_;
}

std::size_t FaultInjectingBackend::calls(FaultSite site) const {
  std::lock_guard lock(mutex_);
  return calls_[static_cast<std::size_t>(site)];
}

std::size_t FaultInjectingBackend::unreported() const {
  std::lock_guard lock(mutex_);
  return pending_.size();
}

const Fault* FaultInjectingBackend::next_fault(FaultSite site, const std::string& what) {
  const std::size_t n = ++calls_[static_cast<std::size_t>(site)];
  if (!armed_) return nullptr;
  auto it = std::find_if(faults_.begin(), faults_.end(),
                         [&](const Fault& f) { return f.site == site && f.nth == n; });
  if (it == faults_.end()) return nullptr;
  log_.push_back(fmt::format("injected {} failure of {} call {} ({})", to_string(it->mode),
                             to_string(site), n, what));
  return &*it;
}

void FaultInjectingBackend::raise_sync(const Fault& f, const std::string& what) {
  MEMENTO_FAIL(BackendError, fmt::format("injected fault: {} call {} failed ({})",
                                         to_string(f.site), f.nth, what));
}

void FaultInjectingBackend::fail_async(std::uint32_t stream, const std::string& what) {
  pending_.push_back({stream, seq_[stream],
                      fmt::format("injected asynchronous fault: {} on stream {}", what, stream)});
}

template <class Pred>
void FaultInjectingBackend::report(Pred covered) {
  std::string message;
  {
    std::lock_guard lock(mutex_);
    auto first = std::stable_partition(pending_.begin(), pending_.end(),
                                       [&](const Failure& f) { return !covered(f); });
    for (auto it = first; it != pending_.end(); ++it)
      message += (message.empty() ? "" : "; ") + it->message;
    pending_.erase(first, pending_.end());
  }
  if (!message.empty()) MEMENTO_FAIL(AsyncBackendError, message);
}

void* FaultInjectingBackend::allocate_segment(std::size_t bytes) {
  {
    std::lock_guard lock(mutex_);
    if (const Fault* f =
            next_fault(FaultSite::segment_allocation, fmt::format("{} bytes", bytes))) {
      if (f->mode == FaultMode::refuse) return nullptr;
      raise_sync(*f, fmt::format("{} bytes", bytes));
    }
  }
  return inner_.allocate_segment(bytes);
}

void FaultInjectingBackend::free_segment(void* ptr, std::size_t bytes) noexcept {
  inner_.free_segment(ptr, bytes);
}

std::size_t FaultInjectingBackend::segment_bytes() const noexcept { return inner_.segment_bytes(); }

void* FaultInjectingBackend::allocate_pinned(std::size_t bytes, int numa_node) {
  {
    std::lock_guard lock(mutex_);
    if (const Fault* f = next_fault(FaultSite::pinned_allocation, fmt::format("{} bytes", bytes))) {
      if (f->mode == FaultMode::refuse) return nullptr;
      raise_sync(*f, fmt::format("{} bytes", bytes));
    }
  }
  return inner_.allocate_pinned(bytes, numa_node);
}

void FaultInjectingBackend::free_pinned(void* ptr, std::size_t bytes) noexcept {
  inner_.free_pinned(ptr, bytes);
}

Stream FaultInjectingBackend::create_stream() { return inner_.create_stream(); }

void* FaultInjectingBackend::native_handle(Stream stream) const {
  return inner_.native_handle(stream);
}

Stream FaultInjectingBackend::stream_from_native(void* handle) {
  return inner_.stream_from_native(handle);
}

void FaultInjectingBackend::synchronize(Stream stream) {
  inner_.synchronize(stream);
  report([&](const Failure& f) { return f.stream == stream.id; });
}

void FaultInjectingBackend::synchronize_all() {
  inner_.synchronize_all();
  report([](const Failure&) { return true; });
}

Event FaultInjectingBackend::create_event() { return inner_.create_event(); }

void FaultInjectingBackend::destroy_event(Event event) noexcept {
  {
    std::lock_guard lock(mutex_);
    recordings_.erase(event.id);
  }
  inner_.destroy_event(event);
}

void FaultInjectingBackend::record(Event event, Stream stream) {
  const std::string what = fmt::format("record of event {} on stream {}", event.id, stream.id);
  std::lock_guard lock(mutex_);
  const Fault* f = next_fault(FaultSite::event_record, what);
  if (f != nullptr && f->mode == FaultMode::throws) raise_sync(*f, what);
  inner_.record(event, stream);
  const std::uint64_t seq = ++seq_[stream.id];
  if (f != nullptr) fail_async(stream.id, what);
  recordings_[event.id] = {stream.id, seq};
}

void FaultInjectingBackend::wait(Stream stream, Event event) {
  const std::string what = fmt::format("wait of stream {} on event {}", stream.id, event.id);
  std::lock_guard lock(mutex_);
  const Fault* f = next_fault(FaultSite::event_wait, what);
  if (f != nullptr && f->mode == FaultMode::throws) raise_sync(*f, what);
  inner_.wait(stream, event);
  ++seq_[stream.id];
  // Work after the wait consumes what the event's stream produced: a failure there that is
  // still unreported fails this stream too.
  if (auto r = recordings_.find(event.id); r != recordings_.end()) {
    std::vector<Failure> inherited;
    for (const Failure& p : pending_)
      if (p.stream == r->second.stream && p.seq <= r->second.seq && p.stream != stream.id)
        inherited.push_back({stream.id, seq_[stream.id],
                             p.message + fmt::format(" (reached stream {})", stream.id)});
    pending_.insert(pending_.end(), inherited.begin(), inherited.end());
  }
  if (f != nullptr) fail_async(stream.id, what);
}

bool FaultInjectingBackend::query(Event event) {
  if (!inner_.query(event)) return false;
  Recording r;
  {
    std::lock_guard lock(mutex_);
    auto it = recordings_.find(event.id);
    if (it == recordings_.end()) return true;
    r = it->second;
  }
  report([&](const Failure& f) { return f.stream == r.stream && f.seq <= r.seq; });
  return true;
}

void FaultInjectingBackend::synchronize(Event event) {
  inner_.synchronize(event);
  Recording r;
  {
    std::lock_guard lock(mutex_);
    auto it = recordings_.find(event.id);
    if (it == recordings_.end()) return;
    r = it->second;
  }
  report([&](const Failure& f) { return f.stream == r.stream && f.seq <= r.seq; });
}

void FaultInjectingBackend::copy_async(void* dst, const void* src, std::size_t bytes, CopyKind kind,
                                       Stream stream) {
  const std::string what = fmt::format("{} copy of {} bytes", to_string(kind), bytes);
  std::lock_guard lock(mutex_);
  const Fault* f = next_fault(FaultSite::copy, what);
  if (f != nullptr && f->mode == FaultMode::throws) raise_sync(*f, what);
  ++seq_[stream.id];
  if (f != nullptr) {
    fail_async(stream.id, what);  // the copy never runs: its destination keeps stale bytes
    return;
  }
  inner_.copy_async(dst, src, bytes, kind, stream);
}

void FaultInjectingBackend::launch(Stream stream, Kernel kernel) {
  const std::string what = fmt::format("kernel {}", kernel.name);
  std::lock_guard lock(mutex_);
  const Fault* f = next_fault(FaultSite::kernel_launch, what);
  if (f != nullptr && f->mode == FaultMode::throws) raise_sync(*f, what);
  ++seq_[stream.id];
  if (f != nullptr) {
    fail_async(stream.id, what);  // the kernel never runs: its outputs keep stale bytes
    return;
  }
  inner_.launch(stream, std::move(kernel));
}

void FaultInjectingBackend::launch_host(Stream stream, HostTask task) {
  const std::string what = fmt::format("host task {}", task.name);
  std::lock_guard lock(mutex_);
  const Fault* f = next_fault(FaultSite::host_launch, what);
  if (f != nullptr && f->mode == FaultMode::throws) raise_sync(*f, what);
  ++seq_[stream.id];
  if (f != nullptr) {
    fail_async(stream.id, what);  // the task never runs: what it writes keeps stale bytes
    return;
  }
  inner_.launch_host(stream, std::move(task));
}

}  // namespace memento
