#include "backends/host/host_backend.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "backends/numa.hpp"
#include "common/log.hpp"
#include "memento/error.hpp"

namespace memento {
namespace {
constexpr std::size_t kSegmentAlignment = 4096;

std::size_t round_up(std::size_t n, std::size_t to) { return (n + to - 1) / to * to; }

bool crosses_link(CopyKind kind) {
  return kind == CopyKind::host_to_device || kind == CopyKind::device_to_host;
}
}  // namespace

HostBackend::HostBackend(HostBackendOptions options) : options_(options) {
  MEMENTO_EXPECTS(options_.capacity > 0, "host backend capacity must be positive");
  MEMENTO_EXPECTS(options_.link_bandwidth >= 0,
                  fmt::format("host backend link bandwidth must be >= 0 bytes/s (0 = unthrottled), "
                              "got {}",
                              options_.link_bandwidth));
  info_.kind = BackendKind::host;
  info_.name = "host";
  info_.capacity = options_.capacity;
  info_.numa_node = numa::node_of_calling_thread();
  info_.h2d_bandwidth = options_.link_bandwidth;  // 0: unthrottled, no meaningful rate
  info_.d2h_bandwidth = options_.link_bandwidth;
  // Real execution on CPU threads over host memory; fp32 kernels only.
  info_.executes_kernels = true;
  info_.holds_data = true;
  info_.host_addressable_memory = true;
  info_.virtual_clock = false;
  info_.supports_bf16 = false;
  info_.numa_node_nearest_device = false;  // numa_node is the constructing thread's node
  streams_.push_back(std::make_unique<HostStream>("stream 0"));
}

HostBackend::~HostBackend() {
  // Drain every stream before destroying any: a queued cross-stream wait holds a pointer
  // to the stream it waits on. Memory is returned after that.
  for (auto& stream : streams_) stream->wait_for(stream->submitted());
  streams_.clear();
  for (auto& [ptr, bytes] : segments_) std::free(ptr);
  if (!segments_.empty())
    log::warning(
        fmt::format("host backend destroyed with {} segment(s) still allocated", segments_.size()));
  for (auto& [ptr, bytes] : pinned_) numa::free(ptr, bytes);
}

void* HostBackend::allocate_segment(std::size_t bytes) {
  MEMENTO_EXPECTS(bytes > 0, "allocate_segment: size must be positive");
  std::lock_guard lock(mutex_);
  if (bytes > options_.capacity - segment_bytes_) return nullptr;
  void* ptr = std::aligned_alloc(kSegmentAlignment, round_up(bytes, kSegmentAlignment));
  if (ptr == nullptr) return nullptr;
  segments_.emplace(ptr, bytes);
  segment_bytes_ += bytes;
  return ptr;
}

void HostBackend::free_segment(void* ptr, std::size_t bytes) noexcept {
  std::lock_guard lock(mutex_);
  auto it = segments_.find(ptr);
  if (it == segments_.end() || it->second != bytes) {
    log::error(fmt::format("host backend: free_segment({}, {}) does not match a live segment", ptr,
                           bytes));
    return;
  }
  segment_bytes_ -= bytes;
  segments_.erase(it);
  std::free(ptr);
}

std::size_t HostBackend::segment_bytes() const noexcept {
  std::lock_guard lock(mutex_);
  return segment_bytes_;
}

void* HostBackend::allocate_pinned(std::size_t bytes, int numa_node) {
  MEMENTO_EXPECTS(bytes > 0, "allocate_pinned: size must be positive");
  void* ptr = numa::allocate_on_node(bytes, numa_node);
  if (ptr == nullptr) return nullptr;
  std::lock_guard lock(mutex_);
  pinned_.emplace(ptr, bytes);
  return ptr;
}

void HostBackend::free_pinned(void* ptr, std::size_t bytes) noexcept {
  {
    std::lock_guard lock(mutex_);
    auto it = pinned_.find(ptr);
    if (it == pinned_.end() || it->second != bytes) {
      log::error(fmt::format("host backend: free_pinned({}, {}) does not match a live buffer", ptr,
                             bytes));
      return;
    }
    pinned_.erase(it);
  }
  numa::free(ptr, bytes);
}

Stream HostBackend::create_stream() {
  std::lock_guard lock(mutex_);
  auto id = static_cast<std::uint32_t>(streams_.size());
  streams_.push_back(std::make_unique<HostStream>(fmt::format("stream {}", id)));
  return Stream{id};
}

HostStream& HostBackend::stream_ref(Stream stream) const {
  std::lock_guard lock(mutex_);
  MEMENTO_EXPECTS(
      stream.id < streams_.size(),
      fmt::format("host backend: unknown stream {} ({} exist)", stream.id, streams_.size()));
  return *streams_[stream.id];
}

void* HostBackend::native_handle(Stream stream) const {
  HostStream& s = stream_ref(stream);
  return stream.id == 0 ? nullptr : &s;
}

Stream HostBackend::stream_from_native(void* handle) {
  if (handle == nullptr) return default_stream();
  std::lock_guard lock(mutex_);
  for (std::uint32_t i = 1; i < streams_.size(); ++i)
    if (streams_[i].get() == handle) return Stream{i};
  MEMENTO_FAIL(LogicError,
               fmt::format("host backend: {} is not a stream handle of this backend", handle));
}

void HostBackend::synchronize(Stream stream) {
  HostStream& s = stream_ref(stream);
  s.wait_for(s.submitted());
  s.check_error();
}

void HostBackend::synchronize_all() {
  std::vector<HostStream*> all;
  {
    std::lock_guard lock(mutex_);
    for (auto& s : streams_) all.push_back(s.get());
  }
  for (HostStream* s : all) s->wait_for(s->submitted());
  for (HostStream* s : all) s->check_error();
}

Event HostBackend::create_event() {
  // Ids are never reused, so a stale handle to a destroyed event is always rejected instead
  // of silently naming a newer event.
  std::lock_guard lock(mutex_);
  auto id = static_cast<std::uint32_t>(events_.size());
  events_.push_back(EventSlot{nullptr, 0, true});
  return Event{id};
}

void HostBackend::destroy_event(Event event) noexcept {
  std::lock_guard lock(mutex_);
  if (event.id >= events_.size() || !events_[event.id].alive) {
    log::error(fmt::format("host backend: destroy_event({}) of an unknown event", event.id));
    return;
  }
  events_[event.id].alive = false;
}

HostBackend::EventSlot HostBackend::event_slot(Event event) const {
  std::lock_guard lock(mutex_);
  MEMENTO_EXPECTS(event.id < events_.size() && events_[event.id].alive,
                  fmt::format("host backend: unknown or destroyed event {}", event.id));
  return events_[event.id];
}

void HostBackend::record(Event event, Stream stream) {
  HostStream& s = stream_ref(stream);
  std::uint64_t ticket = s.submitted();
  std::lock_guard lock(mutex_);
  MEMENTO_EXPECTS(event.id < events_.size() && events_[event.id].alive,
                  fmt::format("host backend: record of unknown or destroyed event {}", event.id));
  events_[event.id].stream = &s;
  events_[event.id].ticket = ticket;
}

void HostBackend::wait(Stream stream, Event event) {
  EventSlot slot = event_slot(event);
  HostStream& s = stream_ref(stream);
  if (slot.stream == nullptr || slot.stream->completed() >= slot.ticket) return;
  if (slot.stream == &s) return;  // stream order already guarantees it
  s.submit([source = slot.stream, ticket = slot.ticket, waiter = &s] {
    if (source->completed() >= ticket) return;
    auto start = std::chrono::steady_clock::now();
    source->wait_for(ticket);
    waiter->add_stall(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  });
}

std::optional<double> HostBackend::stalled_seconds(Stream stream) const {
  return stream_ref(stream).stalled_seconds();
}

bool HostBackend::query(Event event) {
  EventSlot slot = event_slot(event);
  return slot.stream == nullptr || slot.stream->completed() >= slot.ticket;
}

void HostBackend::synchronize(Event event) {
  EventSlot slot = event_slot(event);
  if (slot.stream == nullptr) return;
  slot.stream->wait_for(slot.ticket);
  slot.stream->check_error();
}

void HostBackend::copy_async(void* dst, const void* src, std::size_t bytes, CopyKind kind,
                             Stream stream) {
  MEMENTO_EXPECTS(
      bytes == 0 || (dst != nullptr && src != nullptr),
      fmt::format("copy_async: null pointer (dst={}, src={}, {} bytes)", dst, src, bytes));
  double seconds = crosses_link(kind) && options_.link_bandwidth > 0
                       ? static_cast<double>(bytes) / options_.link_bandwidth
                       : 0.0;
  stream_ref(stream).submit([dst, src, bytes, seconds] {
    if (seconds <= 0) {
      if (bytes > 0) std::memcpy(dst, src, bytes);
      return;
    }
    // Throttled to the modelled link, in chunks spread over the copy's duration, so the
    // source is read (and the destination written) progressively as over a real link, and
    // reusing either buffer before the copy completes shows up as corruption.
    constexpr std::size_t kChunks = 16;
    auto start = std::chrono::steady_clock::now();
    std::size_t chunk = (bytes + kChunks - 1) / kChunks;
    for (std::size_t i = 0, done = 0; done < bytes; ++i) {
      std::size_t n = std::min(chunk, bytes - done);
      std::this_thread::sleep_until(
          start + std::chrono::duration<double>(seconds * static_cast<double>(i) / kChunks));
      std::memcpy(static_cast<char*>(dst) + done, static_cast<const char*>(src) + done, n);
      done += n;
    }
    std::this_thread::sleep_until(start + std::chrono::duration<double>(seconds));
  });
}

void HostBackend::launch(Stream stream, Kernel kernel) {
  MEMENTO_EXPECTS(static_cast<bool>(kernel.host),
                  fmt::format("kernel {} has no host implementation", kernel.name));
  stream_ref(stream).submit(std::move(kernel.host));
}

void HostBackend::launch_host(Stream stream, HostTask task) {
  check_host_task(task, true);
  stream_ref(stream).submit(std::move(task.fn));
}

double HostBackend::now() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

std::unique_ptr<Backend> make_host_backend(HostBackendOptions options) {
  return std::make_unique<HostBackend>(options);
}

}  // namespace memento
