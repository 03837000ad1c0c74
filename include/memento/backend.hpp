// The device interface every layer above is written against. Three implementations:
// host (real execution on CPU threads), sim (discrete-event model), cuda (cudart).
#pragma once

#include <compare>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "memento/kernel.hpp"

namespace memento {

enum class BackendKind { host, sim, cuda };

/// Human-readable backend name: "host", "sim", "cuda".
const char* to_string(BackendKind kind) noexcept;

/// A stream: work submitted to one stream runs in submission order. Handle 0 is the
/// backend's default (compute) stream.
struct Stream {
  std::uint32_t id = 0;
  auto operator<=>(const Stream&) const = default;
};

/// An event: records a point in a stream; completes when the work before it has run.
struct Event {
  std::uint32_t id = 0;
  auto operator<=>(const Event&) const = default;
};

enum class CopyKind { host_to_device, device_to_host, device_to_device, host_to_host };

const char* to_string(CopyKind kind) noexcept;

/// Host code run in stream order (Backend::launch_host): after the work submitted to its
/// stream before it, before the work submitted after it.
struct HostTask {
  std::string name;
  /// Runs on a backend thread, never the caller's: the host backend's stream worker, a
  /// CUDA driver thread (cudaLaunchHostFunc) on cuda. It must not call the Backend or any
  /// CUDA API. An exception it throws fails the stream like a failing kernel. Sim, which
  /// holds no data, never calls it (it may be empty there).
  std::function<void()> fn;
  /// The modelled duration: sim occupies the stream this long on its one CPU engine (host
  /// tasks from every stream serialize on it; kernels, copies and the host clock do not).
  /// Real backends take the time it really takes.
  double seconds = 0;
};

/// LogicError when `task.seconds` is negative or not finite, or (`needs_fn`, the backends
/// that run it) when it has no function: what every launch_host checks first.
void check_host_task(const HostTask& task, bool needs_fn);

/// Static facts about the device behind a backend. Code above the backends asks the
/// capabilities below, never `kind` (which is for naming and printing), so a new backend
/// says what it does instead of being taken for one of the three. The defaults are the host
/// backend's.
struct DeviceInfo {
  BackendKind kind = BackendKind::host;
  std::string name;          ///< e.g. "host", "sim:h100-sxm", "cuda:0 (NVIDIA H200)"
  std::size_t capacity = 0;  ///< device memory in bytes
  int numa_node = -1;        ///< host NUMA node nearest the device, -1 if unknown

  // ---- capabilities ----
  /// launch() runs the kernel's body (Kernel::host on host, Kernel::cuda on cuda), so its
  /// outputs (a loss, say) are computed values. False on sim, which only charges the cost.
  bool executes_kernels = true;
  /// Device and pinned memory hold real bytes: copies move them, kernels read and write
  /// them, and so queued work may still be using a buffer until its stream is done. False
  /// on sim, whose memory is address space only: writing inputs there is pointless and
  /// dereferencing it (pinned memory included) crashes.
  bool holds_data = true;
  /// The host CPU may dereference device memory directly (the host backend's device memory
  /// is host memory). False where device memory is reached by copies only (cuda) or holds
  /// no bytes (sim).
  bool host_addressable_memory = true;
  /// now() is a modelled clock, advanced by the modelled cost of work (and by host_work()),
  /// not the wall clock. True on sim.
  bool virtual_clock = false;
  /// Kernels take bf16 tensors. False on host, whose CPU kernels are fp32 only; sim models
  /// any dtype.
  bool supports_bf16 = false;
  /// `numa_node` is the node nearest a physical device, where pinned staging buffers
  /// belong. False on host (device memory is the caller's own memory, so the caller's node
  /// is the right one) and on sim (no device).
  bool numa_node_nearest_device = false;
  /// Rates the runtime turns op costs and copies into seconds with; 0 where unknown.
  double matrix_flops = 0;      ///< FLOP/s of tensor-core matrix products
  double vector_flops = 0;      ///< FLOP/s of everything else
  double memory_bandwidth = 0;  ///< device memory bytes/s
  double h2d_bandwidth = 0;     ///< host-to-device bytes/s over pinned memory
  double d2h_bandwidth = 0;     ///< device-to-host bytes/s over pinned memory
  /// Where the rates above come from, for messages ("datasheet: NVIDIA H200 SXM 141GB");
  /// empty when the backend states none of its own.
  std::string rates_source;
};

/// The device interface. All methods are thread-safe unless noted. Memory-returning calls
/// return nullptr when the device is out of memory and throw BackendError on other failures.
class Backend {
 public:
  virtual ~Backend() = default;

  [[nodiscard]] virtual const DeviceInfo& info() const noexcept = 0;

  /// Device memory, in large segments; the caching allocator carves blocks out of them.
  /// Returned memory is aligned to at least 512 bytes. nullptr when the device is full.
  [[nodiscard]] virtual void* allocate_segment(std::size_t bytes) = 0;
  virtual void free_segment(void* ptr, std::size_t bytes) noexcept = 0;
  /// Bytes of device memory currently held in segments.
  [[nodiscard]] virtual std::size_t segment_bytes() const noexcept = 0;

  /// Page-locked host memory on the given NUMA node (-1: no preference). nullptr when the
  /// host refuses. The sim backend hands out address space only.
  [[nodiscard]] virtual void* allocate_pinned(std::size_t bytes, int numa_node) = 0;
  virtual void free_pinned(void* ptr, std::size_t bytes) noexcept = 0;

  [[nodiscard]] static constexpr Stream default_stream() noexcept { return Stream{0}; }
  /// A new stream that lives as long as the backend.
  [[nodiscard]] virtual Stream create_stream() = 0;
  /// The native handle of a stream (cudaStream_t on cuda; an opaque pointer elsewhere).
  [[nodiscard]] virtual void* native_handle(Stream stream) const = 0;
  /// The stream behind a native handle; nullptr is the default stream. On cuda a foreign
  /// cudaStream_t is adopted (not owned); elsewhere an unknown handle is an error.
  [[nodiscard]] virtual Stream stream_from_native(void* handle) = 0;
  /// Blocks the calling thread until all work submitted to `stream` has run.
  virtual void synchronize(Stream stream) = 0;
  /// Blocks until every stream is idle.
  virtual void synchronize_all() = 0;

  [[nodiscard]] virtual Event create_event() = 0;
  virtual void destroy_event(Event event) noexcept = 0;
  /// Captures the work submitted to `stream` so far; re-recording replaces the capture.
  virtual void record(Event event, Stream stream) = 0;
  /// Makes later work on `stream` wait until the event's current capture has completed.
  virtual void wait(Stream stream, Event event) = 0;
  /// True when the captured work has completed (an event never recorded is complete).
  [[nodiscard]] virtual bool query(Event event) = 0;
  /// Blocks the calling thread until the captured work has completed.
  virtual void synchronize(Event event) = 0;

  /// Asynchronous copy ordered on `stream`. Host memory in device copies must be pinned.
  virtual void copy_async(void* dst, const void* src, std::size_t bytes, CopyKind kind,
                          Stream stream) = 0;

  /// Enqueues a kernel on `stream`.
  virtual void launch(Stream stream, Kernel kernel) = 0;

  /// Enqueues host code on `stream` (a CPU optimizer step over data a copy on the same
  /// stream brought to pinned memory, say): stream order and events order it against device
  /// work like a kernel, so it overlaps other streams' work. LogicError for a negative or
  /// non-finite `task.seconds`.
  virtual void launch_host(Stream stream, HostTask task) = 0;

  /// Seconds since the backend was created: the wall clock on host and cuda, the host's
  /// virtual clock on sim.
  [[nodiscard]] virtual double now() const = 0;

  /// The calling host thread has just done `seconds` of CPU work the model did not run (a
  /// CPU optimizer step, say). Real backends have spent that time already; sim moves its
  /// virtual host clock, so work issued afterwards starts later.
  virtual void host_work(double seconds) { (void)seconds; }

  /// Seconds `stream` has spent blocked in device-side waits (wait()) on other streams'
  /// work since it was created: for the runtime's compute stream, time stalled on copies.
  /// std::nullopt where the backend does not measure it (cuda).
  [[nodiscard]] virtual std::optional<double> stalled_seconds(Stream stream) const {
    (void)stream;
    return std::nullopt;
  }
};

}  // namespace memento
