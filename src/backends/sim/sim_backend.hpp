// The sim backend: a discrete-event model of a GPU described by a DeviceProfile. It never
// runs kernels and never touches memory; it hands out address space and advances virtual
// clocks. The time model is described at the top of sim_backend.cpp.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "memento/backend.hpp"
#include "memento/device_profile.hpp"

namespace memento {

class SimBackend final : public Backend {
 public:
  /// ConfigError when a rate or the capacity of `profile` is not positive and finite.
  explicit SimBackend(const DeviceProfile& profile);

  [[nodiscard]] const DeviceInfo& info() const noexcept override { return info_; }

  [[nodiscard]] void* allocate_segment(std::size_t bytes) override;
  void free_segment(void* ptr, std::size_t bytes) noexcept override;
  [[nodiscard]] std::size_t segment_bytes() const noexcept override;

  [[nodiscard]] void* allocate_pinned(std::size_t bytes, int numa_node) override;
  void free_pinned(void* ptr, std::size_t bytes) noexcept override;

  [[nodiscard]] Stream create_stream() override;
  [[nodiscard]] void* native_handle(Stream stream) const override;
  [[nodiscard]] Stream stream_from_native(void* handle) override;
  void synchronize(Stream stream) override;
  void synchronize_all() override;

  [[nodiscard]] Event create_event() override;
  void destroy_event(Event event) noexcept override;
  void record(Event event, Stream stream) override;
  void wait(Stream stream, Event event) override;
  [[nodiscard]] bool query(Event event) override;
  void synchronize(Event event) override;

  void copy_async(void* dst, const void* src, std::size_t bytes, CopyKind kind,
                  Stream stream) override;
  void launch(Stream stream, Kernel kernel) override;
  /// Occupies the stream for task.seconds on the modelled CPU engine; never runs task.fn.
  void launch_host(Stream stream, HostTask task) override;

  /// The host's virtual clock, seconds.
  [[nodiscard]] double now() const override;
  [[nodiscard]] std::optional<double> stalled_seconds(Stream stream) const override;
  void host_work(double seconds) override { advance_host(seconds); }

  // ---- sim-only: driving and observing the model ----

  /// Models `seconds` of CPU work on the calling thread (the host clock moves on; streams
  /// keep their own timelines). LogicError when negative or not finite.
  void advance_host(double seconds);
  /// Virtual time at which the work submitted to `stream` so far completes.
  [[nodiscard]] double stream_time(Stream stream) const;
  /// Virtual time an event captured (0 when never recorded).
  [[nodiscard]] double event_time(Event event) const;
  /// Bytes of pinned host address space currently handed out.
  [[nodiscard]] std::size_t pinned_bytes() const noexcept;
  [[nodiscard]] const DeviceProfile& profile() const noexcept { return profile_; }
  /// Kernels launched so far, and the sum of their modelled durations with each rounded to
  /// whole nanoseconds (whole_nanoseconds()): what an operator trace recorded with this
  /// profile's rates sums to.
  [[nodiscard]] std::uint64_t kernels_launched() const;
  [[nodiscard]] std::int64_t kernel_nanoseconds() const;

 private:
  // Live allocations in one fake address region: base address -> size in bytes.
  struct Region {
    std::uintptr_t next;  // bump pointer; address ranges are never reused
    std::uintptr_t end;
    std::map<std::uintptr_t, std::size_t> live;
    std::size_t live_bytes = 0;
  };

  double& tail_locked(Stream stream);
  double& event_locked(Event event);
  const double& event_locked(Event event) const;
  void check_device_range_locked(const void* ptr, std::size_t bytes, const char* what) const;
  // Issues one operation of `duration` seconds on `stream`, serialized on `engine` when
  // non-null: charges the launch latency to the host and advances stream and engine tails.
  // The operation starts no sooner than `gap` after the engine's earlier work ends.
  void issue_locked(Stream stream, double* engine, double duration, double gap = 0);
  // Charges the launch latency to the host and returns when an operation issued now on
  // `stream` (and `engine`, when non-null, `gap` after its earlier work) starts.
  double start_locked(Stream stream, const double* engine, double gap);
  // Issues an h2d or d2h copy of `seconds` at the full link rate on `engine`, slowed while
  // a kernel runs (until kernels_until_) or the other direction's engine is busy; the part
  // that does not hide under kernels also takes the compute engine.
  void issue_copy_locked(Stream stream, double* engine, double seconds);
  // Blocks the host until `time`: where it had to wait, it resumes sync_latency later.
  void wait_until_locked(double time);

  const DeviceProfile profile_;
  const DeviceInfo info_;

  mutable std::mutex mutex_;
  Region device_;
  Region pinned_;
  double host_time_ = 0;
  double compute_engine_ = 0;  // kernels, device-to-device copies, copies' unhidden parts
  double kernels_until_ = 0;   // the end of the last kernel or device-to-device copy
  double h2d_engine_ = 0;
  double d2h_engine_ = 0;
  double cpu_engine_ = 0;                             // host tasks (launch_host) from every stream
  std::vector<double> stream_tails_;                  // indexed by Stream::id
  std::vector<double> stream_stalls_;                 // seconds waited, by Stream::id
  std::unordered_map<std::uint32_t, double> events_;  // live events -> captured time
  std::uint32_t next_event_id_ = 1;                   // 0 is never valid: catches Event{}
  std::uint64_t kernels_launched_ = 0;
  std::int64_t kernel_nanoseconds_ = 0;
};

}  // namespace memento
