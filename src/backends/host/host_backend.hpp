// The host backend: "device memory" is host memory capped at a capacity, each stream is a
// worker thread, kernels are CPU functions, copies are real memcpy (optionally throttled to
// a link bandwidth). Races that would exist on a GPU exist here too.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "backends/host/host_stream.hpp"
#include "memento/backend.hpp"
#include "memento/backends.hpp"

namespace memento {

class HostBackend final : public Backend {
 public:
  explicit HostBackend(HostBackendOptions options);
  ~HostBackend() override;

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
  /// Runs the task on the stream's worker thread, in stream order.
  void launch_host(Stream stream, HostTask task) override;

  [[nodiscard]] double now() const override;
  /// Wall-clock seconds the stream's worker spent blocked in cross-stream waits.
  [[nodiscard]] std::optional<double> stalled_seconds(Stream stream) const override;

 private:
  struct EventSlot {
    HostStream* stream = nullptr;  // null: never recorded
    std::uint64_t ticket = 0;
    bool alive = false;
  };

  HostStream& stream_ref(Stream stream) const;
  EventSlot event_slot(Event event) const;  // copy, taken under the lock

  HostBackendOptions options_;
  DeviceInfo info_;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();

  mutable std::mutex mutex_;
  std::vector<std::unique_ptr<HostStream>> streams_;
  std::vector<EventSlot> events_;
  std::unordered_map<void*, std::size_t> segments_;
  std::size_t segment_bytes_ = 0;
  std::unordered_map<void*, std::size_t> pinned_;
};

}  // namespace memento
