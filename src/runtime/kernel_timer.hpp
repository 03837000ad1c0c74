// Device time of every kernel the runtime launches, for the Chrome trace: one span per
// kernel on a track per stream ("device: compute stream", ...). How the time is taken
// depends on the backend:
//   host: the kernel's host body, wrapped, reads the backend clock (Backend::now()) before
//         and after it runs on the stream's worker thread;
//   cuda: its cuda body, wrapped, records a pair of timing cudaEvents around the kernel on
//         the stream (CudaEventClock), read against an anchor event later;
//   sim:  the model's own times: the stream's modelled end after the launch
//         (SimBackend::stream_time) less the duration the sim charged for it (kernel_seconds).
// Spans are emitted when the kernel is known to have completed (resolve(): at the end of a
// step, after the runtime's synchronize, and on a flush), never by waiting for it. Only
// built when a trace is on; none of it runs otherwise.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "memento/backend.hpp"
#include "memento/runtime.hpp"

namespace memento {

class ChromeTrace;
class CudaEventClock;
class SimBackend;

class KernelTimer {
 public:
  /// How this backend's kernels are timed: "host worker clock", "cuda events", "sim model",
  /// or "none" (a backend not known to the timer, e.g. one wrapped by fault injection: no
  /// device spans).
  KernelTimer(Backend& backend, ChromeTrace& trace);
  ~KernelTimer();
  KernelTimer(const KernelTimer&) = delete;
  KernelTimer& operator=(const KernelTimer&) = delete;

  [[nodiscard]] const char* method() const noexcept;
  /// The stream's track is "device: " + `name`; unnamed streams are "device: stream N".
  void name_stream(Stream stream, const std::string& name);

  /// A launch in progress: prepare() wraps the kernel; after the backend accepted it,
  /// launched() queues its span; if the launch threw, abandon() forgets it.
  struct Launch {
    std::size_t index = 0;
  };
  [[nodiscard]] Launch prepare(Kernel& kernel, Stream stream, const LaunchTag& tag);
  void launched(Launch launch);
  void abandon(Launch launch) noexcept;

  /// Emits the spans of the kernels that have completed, in launch order per stream.
  /// `idle`: every stream is idle, so every kernel launched has completed (cuda also
  /// re-anchors its clock then).
  void resolve(bool idle);
  /// Kernels launched whose span has not been emitted yet.
  [[nodiscard]] std::size_t pending() const noexcept;

 private:
  enum class Method { host, cuda, sim, none };
  struct HostTimes;
  struct Pending;

  void emit(const Pending& p, double start, double end);
  const std::string& track(Stream stream);

  Backend& backend_;
  ChromeTrace& trace_;
  Method method_ = Method::none;
  SimBackend* sim_ = nullptr;
  std::unique_ptr<CudaEventClock> cuda_;
  std::unordered_map<std::uint32_t, std::string> tracks_;  // by Stream::id
  std::vector<std::unique_ptr<Pending>> pending_;          // launch order
  std::size_t lost_ = 0;  // spans that could not be read (logged once)
};

}  // namespace memento
