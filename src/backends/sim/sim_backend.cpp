// The sim backend's model.
//
// Time. There is one host virtual clock, `host_time_` (seconds, starts at 0), and one tail
// time per stream: the virtual time at which the work submitted to that stream so far ends.
// - Issuing a kernel or a copy costs the host the profile's launch latency
//   (host_time += latency), like cudaLaunchKernel / cudaMemcpyAsync do.
// - The op starts at max(stream tail, engine tail (+ kernel_gap for a kernel after the
//   engine's first work), host_time):
//   after earlier work on its stream, after earlier work on the hardware engine it needs,
//   and not before the host issued it. It ends `duration` later; the stream tail and the engine
//   tail become that.
// - Engines, as on a real GPU: one compute engine (kernels from all streams serialize on it,
//   which is what large training kernels that fill the GPU do), and one DMA copy engine per
//   direction, so an h2d copy overlaps a d2h copy and both overlap kernels. Engines are
//   in-order queues: an op issued later never starts earlier on the same engine, even when
//   the engine is idle in a gap (real hardware can sometimes fill such gaps; the sim is
//   pessimistic there).
// - Kernel duration is DeviceProfile::kernel_seconds: on a datasheet profile the roofline
//   max(flops / rate, bytes / hbm_bandwidth) with rate the tensor-core rate when
//   cost.tensor_cores, the FP32 vector rate otherwise, or exactly cost.seconds when the
//   kernel carries a measured duration (a replayed log). A calibrated profile (memento
//   calibrate) adds measured kernels, per-name efficiencies and a per-kernel overhead. A
//   zero-cost kernel takes no device time (only the launch latency on the host).
// - A calibrated profile (a CPU "device" with few cores, whose copies share cores and
//   memory bandwidth with its kernels and with each other) changes copies three ways:
//   * the part of a copy that runs while a kernel runs (until the last issued kernel's or
//     device-to-device copy's end) moves copy_slowdown_under_kernels times slower, and the part
//     that runs while the other direction's engine is busy copy_slowdown_both_ways times slower
//     (both at once: the product). Only the copy issued later is slowed: the earlier one's end is
//     already fixed, which calibrate's conversion of the pair it times accounts for;
//   * 1 - copy_overlap of the copy's time, which did not hide under kernels, is appended to
//     the compute engine (after the kernels queued there, if any: it delays the kernels
//     issued after the copy);
//   A datasheet GPU's factors are 1, 1 and copy_overlap 1: copies run beside kernels at the
//   link's rate. Further, a kernel starts no sooner than kernel_gap after the compute
//   engine's previous work (what a real stream loses between kernels on average; 0 on a
//   datasheet profile); segment allocation and release cost the host what they measured
//   (cudaMalloc blocks); and a host or stream that had to wait resumes sync_latency after
//   what it waited for.
// - Copy duration: h2d and d2h bytes / the link bandwidth of that direction; d2d runs on the
//   compute engine (a copy kernel reads and writes: 2 * bytes / hbm_bandwidth); h2h is a
//   host memcpy at hbm speed on no engine (ordered by its stream only). A zero-byte copy is
//   not issued at all (no latency), as on the cuda backend.
// - Events carry a virtual time: record() captures the stream tail; a never-recorded event
//   has time 0. wait() raises the stream tail to the event's time. query() is true when the
//   event's time is not after host_time; synchronize(...) moves host_time up to the time
//   waited for. So the host only learns of completion by blocking or by advance_host().
// - Host tasks (launch_host) take their modelled seconds on one CPU engine: in stream
//   order, serialized with each other, overlapping kernels, copies and the host clock (the
//   thread that issued them goes on, as with cudaLaunchHostFunc).
// The sim never calls kernel.host or kernel.cuda, nor a host task's function.
//
// Memory is address space only: nothing is mapped, touched or malloc'd, so an 80 GB device
// is modelled on a machine with far less RAM. Addresses come from bump pointers in
// non-canonical ranges (bit 61 / bit 62 set): no real host pointer can ever fall in them, so
// a fake address is never confused with real memory, and dereferencing one faults at once
// instead of corrupting something. Ranges are never reused, which makes use-after-free of a
// segment detectable; each range spans 2^60 bytes, so that never runs out in practice.
#include "backends/sim/sim_backend.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <utility>

#include "backends/sim/copy_contention.hpp"
#include "backends/sim/sim_profile.hpp"
#include "common/log.hpp"
#include "memento/backends.hpp"
#include "memento/error.hpp"

namespace memento {
namespace {

static_assert(sizeof(std::uintptr_t) == 8, "the sim address model needs 64-bit pointers");

constexpr std::uintptr_t kDeviceBase = std::uintptr_t{1} << 61;
constexpr std::uintptr_t kPinnedBase = std::uintptr_t{1} << 62;
constexpr std::uintptr_t kRegionSpan = std::uintptr_t{1} << 60;
// Native stream handles: opaque, non-canonical, so a real cudaStream_t or host pointer
// passed to stream_from_native by mistake is rejected instead of aliasing a stream.
constexpr std::uintptr_t kHandleBase = (std::uintptr_t{1} << 61) | (std::uintptr_t{1} << 62);
constexpr std::uintptr_t kAlignment = 512;

std::uintptr_t address(const void* ptr) { return reinterpret_cast<std::uintptr_t>(ptr); }

// Hands out `bytes` of fresh address space from `next`, or 0 when the range is exhausted.
std::uintptr_t bump(std::uintptr_t& next, std::uintptr_t end, std::size_t bytes) {
  if (bytes > end - next) return 0;
  const std::uintptr_t rounded = (bytes + kAlignment - 1) / kAlignment * kAlignment;
  if (rounded > end - next) return 0;
  const std::uintptr_t base = next;
  next += rounded;
  return base;
}

// The same from the top of the range down: each segment below the previous one.
std::uintptr_t bump_down(std::uintptr_t next, std::uintptr_t& end, std::size_t bytes) {
  if (bytes > end - next) return 0;
  const std::uintptr_t rounded = (bytes + kAlignment - 1) / kAlignment * kAlignment;
  if (rounded > end - next) return 0;
  end -= rounded;
  return end;
}

}  // namespace

SimBackend::SimBackend(const DeviceProfile& profile)
    : profile_(sim::checked_profile(profile)),
      info_(sim::sim_info(profile)),
      device_{kDeviceBase, kDeviceBase + kRegionSpan, {}, 0},
      pinned_{kPinnedBase, kPinnedBase + kRegionSpan, {}, 0},
      stream_tails_(1, 0.0),
      stream_stalls_(1, 0.0) {}

// ---- memory ----------------------------------------------------------------------------

void* SimBackend::allocate_segment(std::size_t bytes) {
  MEMENTO_EXPECTS(bytes > 0, "allocate_segment: bytes is 0; a segment needs at least 1 byte");
  std::lock_guard lock(mutex_);
  if (bytes > profile_.capacity - device_.live_bytes) return nullptr;  // device full
  const std::uintptr_t base = profile_.segments_fall ? bump_down(device_.next, device_.end, bytes)
                                                     : bump(device_.next, device_.end, bytes);
  if (base == 0) return nullptr;
  device_.live.emplace(base, bytes);
  device_.live_bytes += bytes;
  host_time_ += profile_.segment_allocate_seconds;  // cudaMalloc blocks the host
  return reinterpret_cast<void*>(base);
}

void SimBackend::free_segment(void* ptr, std::size_t bytes) noexcept {
  if (ptr == nullptr) return;
  std::lock_guard lock(mutex_);
  const auto it = device_.live.find(address(ptr));
  if (it == device_.live.end()) {
    log::error(fmt::format("sim: free_segment({}, {}): not a live segment of {}; ignored", ptr,
                           bytes, info_.name));
    return;
  }
  if (it->second != bytes) {
    log::error(
        fmt::format("sim: free_segment({}, {}): segment was allocated with {} bytes; "
                    "freeing {} bytes",
                    ptr, bytes, it->second, it->second));
  }
  device_.live_bytes -= it->second;
  device_.live.erase(it);
  host_time_ += profile_.segment_free_seconds;
}

std::size_t SimBackend::segment_bytes() const noexcept {
  std::lock_guard lock(mutex_);
  return device_.live_bytes;
}

void* SimBackend::allocate_pinned(std::size_t bytes, int /*numa_node: no host to place*/) {
  MEMENTO_EXPECTS(bytes > 0, "allocate_pinned: bytes is 0; pinned memory needs at least 1 byte");
  std::lock_guard lock(mutex_);
  const std::uintptr_t base = bump(pinned_.next, pinned_.end, bytes);
  if (base == 0) return nullptr;
  pinned_.live.emplace(base, bytes);
  pinned_.live_bytes += bytes;
  return reinterpret_cast<void*>(base);
}

void SimBackend::free_pinned(void* ptr, std::size_t bytes) noexcept {
  if (ptr == nullptr) return;
  std::lock_guard lock(mutex_);
  const auto it = pinned_.live.find(address(ptr));
  if (it == pinned_.live.end()) {
    log::error(
        fmt::format("sim: free_pinned({}, {}): not a live pinned allocation; ignored", ptr, bytes));
    return;
  }
  if (it->second != bytes) {
    log::error(fmt::format("sim: free_pinned({}, {}): allocated with {} bytes; freeing {} bytes",
                           ptr, bytes, it->second, it->second));
  }
  pinned_.live_bytes -= it->second;
  pinned_.live.erase(it);
}

std::size_t SimBackend::pinned_bytes() const noexcept {
  std::lock_guard lock(mutex_);
  return pinned_.live_bytes;
}

// ---- streams ---------------------------------------------------------------------------

double& SimBackend::tail_locked(Stream stream) {
  MEMENTO_EXPECTS(stream.id < stream_tails_.size(),
                  fmt::format("unknown stream id {}; {} has streams 0..{} (from create_stream)",
                              stream.id, info_.name, stream_tails_.size() - 1));
  return stream_tails_[stream.id];
}

Stream SimBackend::create_stream() {
  std::lock_guard lock(mutex_);
  MEMENTO_EXPECTS(stream_tails_.size() <= std::numeric_limits<std::uint32_t>::max(),
                  "create_stream: the sim backend ran out of stream ids", BackendError);
  // A new stream has no work yet; its work still cannot start before the host issues it.
  stream_tails_.push_back(0.0);
  stream_stalls_.push_back(0.0);
  return Stream{static_cast<std::uint32_t>(stream_tails_.size() - 1)};
}

void* SimBackend::native_handle(Stream stream) const {
  std::lock_guard lock(mutex_);
  MEMENTO_EXPECTS(stream.id < stream_tails_.size(),
                  fmt::format("native_handle: unknown stream id {}; {} has streams 0..{}",
                              stream.id, info_.name, stream_tails_.size() - 1));
  if (stream.id == 0) return nullptr;  // the default stream, as on cuda
  return reinterpret_cast<void*>(kHandleBase + stream.id);
}

Stream SimBackend::stream_from_native(void* handle) {
  if (handle == nullptr) return default_stream();
  std::lock_guard lock(mutex_);
  const std::uintptr_t h = address(handle);
  MEMENTO_EXPECTS(h > kHandleBase && h - kHandleBase < stream_tails_.size(),
                  fmt::format("stream_from_native: unknown handle {}; {} accepts nullptr (the "
                              "default stream) or a handle from its own native_handle()",
                              handle, info_.name));
  return Stream{static_cast<std::uint32_t>(h - kHandleBase)};
}

void SimBackend::synchronize(Stream stream) {
  std::lock_guard lock(mutex_);
  wait_until_locked(tail_locked(stream));
}

void SimBackend::synchronize_all() {
  std::lock_guard lock(mutex_);
  wait_until_locked(*std::max_element(stream_tails_.begin(), stream_tails_.end()));
}

void SimBackend::wait_until_locked(double time) {
  if (time > host_time_) host_time_ = time + profile_.sync_latency;
}

std::optional<double> SimBackend::stalled_seconds(Stream stream) const {
  std::lock_guard lock(mutex_);
  MEMENTO_EXPECTS(stream.id < stream_stalls_.size(),
                  fmt::format("stalled_seconds: unknown stream id {}; {} has streams 0..{}",
                              stream.id, info_.name, stream_stalls_.size() - 1));
  return stream_stalls_[stream.id];
}

double SimBackend::stream_time(Stream stream) const {
  std::lock_guard lock(mutex_);
  MEMENTO_EXPECTS(stream.id < stream_tails_.size(),
                  fmt::format("stream_time: unknown stream id {}; {} has streams 0..{}", stream.id,
                              info_.name, stream_tails_.size() - 1));
  return stream_tails_[stream.id];
}

// ---- events ----------------------------------------------------------------------------

const double& SimBackend::event_locked(Event event) const {
  const auto it = events_.find(event.id);
  if (it != events_.end()) return it->second;
  if (event.id != 0 && event.id < next_event_id_) {
    MEMENTO_FAIL(LogicError,
                 fmt::format("event id {} was destroyed; create a new event", event.id));
  }
  MEMENTO_FAIL(LogicError, fmt::format("unknown event id {}; events come from create_event() "
                                       "of the same backend",
                                       event.id));
}

double& SimBackend::event_locked(Event event) {
  return const_cast<double&>(std::as_const(*this).event_locked(event));
}

Event SimBackend::create_event() {
  std::lock_guard lock(mutex_);
  // Ids are never reused, so a destroyed event stays recognisable as destroyed.
  MEMENTO_EXPECTS(next_event_id_ != 0, "create_event: the sim backend ran out of event ids",
                  BackendError);
  const Event event{next_event_id_++};
  events_.emplace(event.id, 0.0);
  return event;
}

void SimBackend::destroy_event(Event event) noexcept {
  std::lock_guard lock(mutex_);
  if (events_.erase(event.id) == 0) {
    log::error(
        fmt::format("sim: destroy_event: event id {} is not a live event; ignored", event.id));
  }
}

void SimBackend::record(Event event, Stream stream) {
  std::lock_guard lock(mutex_);
  const double tail = tail_locked(stream);
  event_locked(event) = tail;
}

void SimBackend::wait(Stream stream, Event event) {
  std::lock_guard lock(mutex_);
  const double time = event_locked(event);
  double& tail = tail_locked(stream);
  // The stream would otherwise start its next work at max(tail, host time): the wait
  // stalls it for whatever the event lies beyond that, and a stalled stream resumes
  // sync_latency after the event (its worker woken on a CPU).
  const double stall = time - std::max(tail, host_time_);
  tail = std::max(tail, time);
  if (stall > 0) {
    stream_stalls_[stream.id] += stall + profile_.sync_latency;
    tail += profile_.sync_latency;
  }
}

bool SimBackend::query(Event event) {
  std::lock_guard lock(mutex_);
  return event_locked(event) <= host_time_;
}

void SimBackend::synchronize(Event event) {
  std::lock_guard lock(mutex_);
  wait_until_locked(event_locked(event));
}

double SimBackend::event_time(Event event) const {
  std::lock_guard lock(mutex_);
  return event_locked(event);
}

// ---- work ------------------------------------------------------------------------------

double SimBackend::start_locked(Stream stream, const double* engine, double gap) {
  host_time_ += profile_.launch_latency;
  double start = std::max(tail_locked(stream), host_time_);
  // An engine at 0 has done nothing yet: no earlier work to hand over from.
  if (engine != nullptr) start = std::max(start, *engine > 0 ? *engine + gap : 0.0);
  return start;
}

void SimBackend::issue_locked(Stream stream, double* engine, double duration, double gap) {
  const double end = start_locked(stream, engine, gap) + duration;
  tail_locked(stream) = end;
  if (engine != nullptr) *engine = end;
}

void SimBackend::issue_copy_locked(Stream stream, double* engine, double seconds) {
  const double start = start_locked(stream, engine, 0);
  const double other = engine == &h2d_engine_ ? d2h_engine_ : h2d_engine_;
  const double end = start + sim::stretched(start, seconds,
                                            {{kernels_until_, profile_.copy_slowdown_under_kernels},
                                             {other, profile_.copy_slowdown_both_ways}});
  tail_locked(stream) = end;
  *engine = end;
  // The part of the copy that does not hide under kernels takes the compute engine too.
  const double unhidden = (1 - profile_.copy_overlap) * seconds;
  if (unhidden > 0) compute_engine_ = std::max(compute_engine_, start) + unhidden;
}

void SimBackend::check_device_range_locked(const void* ptr, std::size_t bytes,
                                           const char* what) const {
  const std::uintptr_t p = address(ptr);
  auto it = device_.live.upper_bound(p);
  bool inside = false;
  if (it != device_.live.begin()) {
    --it;
    inside = p - it->first <= it->second && bytes <= it->second - (p - it->first);
  }
  MEMENTO_EXPECTS(inside, fmt::format("copy_async: {} {} ({} bytes) is not inside a live device "
                                      "segment of {}; device pointers must come from "
                                      "allocate_segment and not be freed",
                                      what, ptr, bytes, info_.name));
}

void SimBackend::copy_async(void* dst, const void* src, std::size_t bytes, CopyKind kind,
                            Stream stream) {
  std::lock_guard lock(mutex_);
  (void)tail_locked(stream);  // reject a bad stream before anything else
  const bool dst_device = kind == CopyKind::host_to_device || kind == CopyKind::device_to_device;
  const bool src_device = kind == CopyKind::device_to_host || kind == CopyKind::device_to_device;
  // The cuda backend returns before calling the driver for an empty copy; so does the model.
  if (bytes == 0) return;
  MEMENTO_EXPECTS(dst != nullptr && src != nullptr,
                  fmt::format("copy_async({}): null {} for a {}-byte copy", to_string(kind),
                              dst == nullptr ? "destination" : "source", bytes));
  if (dst_device) check_device_range_locked(dst, bytes, "destination");
  if (src_device) check_device_range_locked(src, bytes, "source");
  const double b = static_cast<double>(bytes);
  switch (kind) {
    case CopyKind::host_to_device:
      issue_copy_locked(stream, &h2d_engine_, b / profile_.h2d_bandwidth);
      return;
    case CopyKind::device_to_host:
      issue_copy_locked(stream, &d2h_engine_, b / profile_.d2h_bandwidth);
      return;
    case CopyKind::device_to_device:  // a copy kernel
      issue_locked(stream, &compute_engine_, 2 * b / profile_.hbm_bandwidth);
      kernels_until_ = compute_engine_;
      return;
    case CopyKind::host_to_host:
      issue_locked(stream, nullptr, b / profile_.hbm_bandwidth);
      return;
  }
  MEMENTO_FAIL(LogicError, fmt::format("copy_async: unknown CopyKind {}; accepted: "
                                       "host_to_device, device_to_host, device_to_device, "
                                       "host_to_host",
                                       static_cast<int>(kind)));
}

void SimBackend::launch(Stream stream, Kernel kernel) {
  const KernelCost& cost = kernel.cost;
  MEMENTO_EXPECTS(
      std::isfinite(cost.flops) && cost.flops >= 0 && std::isfinite(cost.bytes) && cost.bytes >= 0,
      fmt::format("launch '{}': cost has flops {} and bytes {}; both must be finite "
                  "and >= 0",
                  kernel.name, cost.flops, cost.bytes));
  MEMENTO_EXPECTS(!cost.seconds || (std::isfinite(*cost.seconds) && *cost.seconds >= 0),
                  fmt::format("launch '{}': explicit duration {} s; accepted: finite and >= 0",
                              kernel.name, cost.seconds.value_or(0)));
  const double duration = profile_.kernel_seconds(kernel.name, cost);
  std::lock_guard lock(mutex_);
  issue_locked(stream, &compute_engine_, duration, profile_.kernel_gap);
  kernels_until_ = compute_engine_;
  ++kernels_launched_;
  kernel_nanoseconds_ += whole_nanoseconds(duration);
}

void SimBackend::launch_host(Stream stream, HostTask task) {
  check_host_task(task, false);
  std::lock_guard lock(mutex_);
  issue_locked(stream, &cpu_engine_, task.seconds);
}

std::uint64_t SimBackend::kernels_launched() const {
  std::lock_guard lock(mutex_);
  return kernels_launched_;
}

std::int64_t SimBackend::kernel_nanoseconds() const {
  std::lock_guard lock(mutex_);
  return kernel_nanoseconds_;
}

// ---- clocks ----------------------------------------------------------------------------

double SimBackend::now() const {
  std::lock_guard lock(mutex_);
  return host_time_;
}

void SimBackend::advance_host(double seconds) {
  MEMENTO_EXPECTS(std::isfinite(seconds) && seconds >= 0,
                  fmt::format("advance_host: {} seconds; accepted: finite and >= 0", seconds));
  std::lock_guard lock(mutex_);
  host_time_ += seconds;
}

std::unique_ptr<Backend> make_sim_backend(const DeviceProfile& profile) {
  return std::make_unique<SimBackend>(profile);
}

}  // namespace memento
