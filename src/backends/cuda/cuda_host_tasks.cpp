// CudaBackend::launch_host: host code in stream order through cudaLaunchHostFunc. The task
// runs on a CUDA driver thread, which must not call CUDA; its failure waits for the next
// synchronize to be reported.
#include <fmt/format.h>

#include <cmath>
#include <memory>
#include <mutex>
#include <string>
#include <utility>

#include "backends/cuda/cuda_backend.hpp"
#include "backends/cuda/device_guard.hpp"
#include "memento/error.hpp"

namespace memento {
namespace {

// What cudaLaunchHostFunc carries: the task and where its failure goes. Owned by the
// callback, which deletes it.
struct HostCall {
  HostTask task;
  std::shared_ptr<void> failures_keepalive;
  std::mutex* mutex = nullptr;
  std::string* first = nullptr;
};

void CUDART_CB run_host_call(void* data) {
  std::unique_ptr<HostCall> call(static_cast<HostCall*>(data));
  std::string failure;
  try {
    call->task.fn();
  } catch (const std::exception& e) {
    failure = e.what();
  } catch (...) {
    failure = "unknown exception";
  }
  if (failure.empty()) return;
  std::lock_guard lock(*call->mutex);
  if (call->first->empty()) *call->first = "host task " + call->task.name + ": " + failure;
}

}  // namespace

void CudaBackend::launch_host(Stream stream, HostTask task) {
  check_host_task(task, true);
  cudaStream_t s = stream_handle(stream);
  auto call = std::make_unique<HostCall>();
  call->task = std::move(task);
  call->failures_keepalive = host_failures_;
  call->mutex = &host_failures_->mutex;
  call->first = &host_failures_->first;
  DeviceGuard guard(device_);
  MEMENTO_CUDA_TRY(cudaLaunchHostFunc(s, run_host_call, call.get()));
  (void)call.release();  // the callback owns it now
}

void CudaBackend::report_host_task_failure() {
  std::string failure;
  {
    std::lock_guard lock(host_failures_->mutex);
    failure = std::exchange(host_failures_->first, std::string());
  }
  MEMENTO_EXPECTS(failure.empty(), failure, AsyncBackendError);
}

}  // namespace memento
