// The cuda backend: the Backend interface over the CUDA runtime API.
//
// Stream{0} is the legacy default stream (native handle nullptr), the stream PyTorch and
// most CUDA code use when they name none, so memento_malloc(..., stream=nullptr) lands on
// it. Streams from create_stream are non-blocking: they do not serialise with stream 0, so
// copies overlap compute and ordering against stream 0 is always explicit (events).
//
// Every call sets the backend's device for its duration and restores the caller's, so the
// backend may be used from any thread without disturbing the caller's current device.
#pragma once

#include <cuda_runtime_api.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "memento/backend.hpp"

namespace memento {

class CudaBackend final : public Backend {
 public:
  /// Throws BackendError when no CUDA device is usable or `device` is not a valid ordinal.
  explicit CudaBackend(int device);
  ~CudaBackend() override;
  CudaBackend(const CudaBackend&) = delete;
  CudaBackend& operator=(const CudaBackend&) = delete;

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
  /// cudaLaunchHostFunc: the task runs on a driver thread in stream order. An exception it
  /// throws is reported (AsyncBackendError, once) by the next synchronize.
  void launch_host(Stream stream, HostTask task) override;

  [[nodiscard]] double now() const override;

 private:
  struct StreamSlot {
    cudaStream_t handle = nullptr;
    bool owned = false;  // adopted foreign streams belong to their creator
  };
  struct PinnedBlock {
    std::size_t bytes = 0;
    bool registered = false;  // numa memory + cudaHostRegister, else cudaHostAlloc
  };

  [[nodiscard]] cudaStream_t stream_handle(Stream stream) const;
  [[nodiscard]] cudaEvent_t event_handle(Event event) const;
  static void release_pinned(void* ptr, const PinnedBlock& block) noexcept;
  /// Throws AsyncBackendError for the first host task that failed since the last report.
  void report_host_task_failure();

  /// Where host tasks (on driver threads) leave their first failure; shared with the tasks
  /// in flight so it outlives neither.
  struct HostTaskFailures {
    std::mutex mutex;
    std::string first;
  };

  const int device_;
  DeviceInfo info_;
  const std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
  std::atomic<std::size_t> segment_bytes_{0};
  std::atomic<bool> warned_register_{false};

  mutable std::mutex mutex_;  // guards the tables below
  std::unordered_map<void*, std::size_t> segments_;
  std::vector<StreamSlot> streams_;  // indexed by Stream::id
  std::unordered_map<cudaStream_t, std::uint32_t> stream_ids_;
  // Ids are never reused, so a destroyed event's id stays unknown and is rejected.
  std::unordered_map<std::uint32_t, cudaEvent_t> events_;
  std::uint32_t next_event_id_ = 1;  // 0 is never valid: catches Event{}
  std::unordered_map<void*, PinnedBlock> pinned_;
  std::shared_ptr<HostTaskFailures> host_failures_ = std::make_shared<HostTaskFailures>();
};

}  // namespace memento
