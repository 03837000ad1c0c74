// A backend decorator that times every kernel launched through it: what `memento
// calibrate` measures a real device with. In blocking mode each launch waits for its
// stream to drain first and is synchronized after, so the time is that kernel's alone (as
// CUDA_LAUNCH_BLOCKING=1 does); otherwise only the host's issue time is measured. Every
// other call is passed through unchanged.
#pragma once

#include <cstddef>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "memento/backend.hpp"

namespace memento::calibrate {

/// One launch as the decorator saw it.
struct KernelSample {
  std::string name;
  KernelCost cost;
  double seconds = 0;        ///< launch to completion (blocking mode), backend clock
  double issue_seconds = 0;  ///< the launch call alone, backend clock
  double start = 0;          ///< a device span's start on its trace's clock (stream timing)
};

class TimingBackend final : public Backend {
 public:
  TimingBackend(Backend& inner, bool blocking) : inner_(inner), blocking_(blocking) {}

  /// The samples so far, and forgets them.
  [[nodiscard]] std::vector<KernelSample> take_samples();
  /// Whether launches are timed at all (off: passed through untouched).
  void set_recording(bool on);

  [[nodiscard]] const DeviceInfo& info() const noexcept override { return inner_.info(); }
  [[nodiscard]] void* allocate_segment(std::size_t bytes) override {
    return inner_.allocate_segment(bytes);
  }
  void free_segment(void* ptr, std::size_t bytes) noexcept override {
    inner_.free_segment(ptr, bytes);
  }
  [[nodiscard]] std::size_t segment_bytes() const noexcept override {
    return inner_.segment_bytes();
  }
  [[nodiscard]] void* allocate_pinned(std::size_t bytes, int numa_node) override {
    return inner_.allocate_pinned(bytes, numa_node);
  }
  void free_pinned(void* ptr, std::size_t bytes) noexcept override {
    inner_.free_pinned(ptr, bytes);
  }
  [[nodiscard]] Stream create_stream() override { return inner_.create_stream(); }
  [[nodiscard]] void* native_handle(Stream stream) const override {
    return inner_.native_handle(stream);
  }
  [[nodiscard]] Stream stream_from_native(void* handle) override {
    return inner_.stream_from_native(handle);
  }
  void synchronize(Stream stream) override { inner_.synchronize(stream); }
  void synchronize_all() override { inner_.synchronize_all(); }
  [[nodiscard]] Event create_event() override { return inner_.create_event(); }
  void destroy_event(Event event) noexcept override { inner_.destroy_event(event); }
  void record(Event event, Stream stream) override { inner_.record(event, stream); }
  void wait(Stream stream, Event event) override { inner_.wait(stream, event); }
  [[nodiscard]] bool query(Event event) override { return inner_.query(event); }
  void synchronize(Event event) override { inner_.synchronize(event); }
  void copy_async(void* dst, const void* src, std::size_t bytes, CopyKind kind,
                  Stream stream) override {
    inner_.copy_async(dst, src, bytes, kind, stream);
  }
  void launch(Stream stream, Kernel kernel) override;
  void launch_host(Stream stream, HostTask task) override {
    inner_.launch_host(stream, std::move(task));
  }
  [[nodiscard]] double now() const override { return inner_.now(); }
  void host_work(double seconds) override { inner_.host_work(seconds); }
  [[nodiscard]] std::optional<double> stalled_seconds(Stream stream) const override {
    return inner_.stalled_seconds(stream);
  }

 private:
  Backend& inner_;
  const bool blocking_;
  std::mutex mutex_;
  bool recording_ = true;
  std::vector<KernelSample> samples_;
};

}  // namespace memento::calibrate
