// Device time of kernels on cuda, for the trace: a pair of timing cudaEvents recorded around
// each kernel on its stream, read with cudaEventElapsedTime against an anchor event whose
// time on the host clock is known (recorded on an idle stream and waited for). Built
// without CUDA, available() is false and the class must not be constructed.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

namespace memento {

class CudaEventClock {
 public:
  /// Whether this build has the cuda backend (MEMENTO_HAS_CUDA).
  [[nodiscard]] static bool available() noexcept;

  /// `host_now` is the backend clock (Backend::now()) the spans are placed on.
  explicit CudaEventClock(std::function<double()> host_now);
  /// Destroys the events (on the device they were created on); logs, never throws.
  ~CudaEventClock();
  CudaEventClock(const CudaEventClock&) = delete;
  CudaEventClock& operator=(const CudaEventClock&) = delete;

  /// A free event pair for one kernel. Its events are created on first use, inside the
  /// kernel body, where the backend has made its device current.
  [[nodiscard]] std::size_t acquire();
  /// In the kernel body (the backend's device current): records the pair's start, resp.
  /// end, event on `stream` (a cudaStream_t). The first start anchors the clock: it records
  /// the anchor on `stream` and waits for it (once; later anchors come from reanchor()).
  /// BackendError when cudart fails.
  void record_start(std::size_t slot, void* stream);
  void record_end(std::size_t slot, void* stream);
  /// What read() found: the kernel's start and end on the host clock once its end event has
  /// completed (ready); pending while it has not; lost when it can never be read (the body
  /// did not record both events, or cudart failed: logged).
  struct Reading {
    enum class State { pending, ready, lost } state = State::pending;
    double start = 0;
    double end = 0;
  };
  /// Does not block.
  [[nodiscard]] Reading read(std::size_t slot);
  /// The pair may be reused.
  void release(std::size_t slot);
  /// Records a fresh anchor on the stream of the last recording and waits for it: call with
  /// the streams idle (after a synchronize), so that elapsed times stay short (a float of
  /// milliseconds) and the wait is immediate. A no-op before the first kernel.
  void reanchor();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::mutex mutex_;
};

}  // namespace memento
