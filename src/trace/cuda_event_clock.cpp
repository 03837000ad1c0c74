#include "trace/cuda_event_clock.hpp"

#include "memento/error.hpp"

#if MEMENTO_HAS_CUDA
#include <cuda_runtime_api.h>

#include "common/cuda_try.hpp"
#endif

namespace memento {

#if MEMENTO_HAS_CUDA

namespace {
// Makes `device` current for a scope and restores the previous one.
class DeviceScope {
 public:
  explicit DeviceScope(int device) {
    if (device < 0 || cudaGetDevice(&previous_) != cudaSuccess) return;
    if (previous_ != device) MEMENTO_CUDA_LOG(cudaSetDevice(device));
  }
  ~DeviceScope() {
    int now = -1;
    if (previous_ >= 0 && cudaGetDevice(&now) == cudaSuccess && now != previous_)
      MEMENTO_CUDA_LOG(cudaSetDevice(previous_));
  }
  DeviceScope(const DeviceScope&) = delete;
  DeviceScope& operator=(const DeviceScope&) = delete;

 private:
  int previous_ = -1;
};
}  // namespace

struct CudaEventClock::Impl {
  struct Pair {
    cudaEvent_t start = nullptr;
    cudaEvent_t end = nullptr;
    bool started = false;
    bool ended = false;
  };
  std::function<double()> host_now;
  int device = -1;  // where the events live: current in the first kernel body
  cudaStream_t last_stream = nullptr;
  cudaEvent_t anchor = nullptr;
  double anchor_host = 0;  // the anchor's time on the host clock
  std::vector<Pair> pairs;
  std::vector<std::size_t> free;

  void anchor_on(cudaStream_t stream) {
    if (anchor == nullptr) MEMENTO_CUDA_TRY(cudaEventCreate(&anchor));
    MEMENTO_CUDA_TRY(cudaEventRecord(anchor, stream));
    MEMENTO_CUDA_TRY(cudaEventSynchronize(anchor));
    // The event completed at most a wake-up before this: spans sit that much early.
    anchor_host = host_now();
  }
};

bool CudaEventClock::available() noexcept { return true; }

CudaEventClock::CudaEventClock(std::function<double()> host_now) : impl_(std::make_unique<Impl>()) {
  impl_->host_now = std::move(host_now);
}

CudaEventClock::~CudaEventClock() {
  DeviceScope scope(impl_->device);
  for (Impl::Pair& p : impl_->pairs) {
    if (p.start != nullptr) MEMENTO_CUDA_LOG(cudaEventDestroy(p.start));
    if (p.end != nullptr) MEMENTO_CUDA_LOG(cudaEventDestroy(p.end));
  }
  if (impl_->anchor != nullptr) MEMENTO_CUDA_LOG(cudaEventDestroy(impl_->anchor));
}

std::size_t CudaEventClock::acquire() {
  std::lock_guard lock(mutex_);
  if (impl_->free.empty()) {
    impl_->pairs.emplace_back();
    return impl_->pairs.size() - 1;
  }
  const std::size_t slot = impl_->free.back();
  impl_->free.pop_back();
  return slot;
}

void CudaEventClock::record_start(std::size_t slot, void* stream) {
  std::lock_guard lock(mutex_);
  auto s = static_cast<cudaStream_t>(stream);
  if (impl_->device < 0) {
    MEMENTO_CUDA_TRY(cudaGetDevice(&impl_->device));
    impl_->anchor_on(s);
  }
  impl_->last_stream = s;
  Impl::Pair& p = impl_->pairs.at(slot);
  if (p.start == nullptr) MEMENTO_CUDA_TRY(cudaEventCreate(&p.start));
  if (p.end == nullptr) MEMENTO_CUDA_TRY(cudaEventCreate(&p.end));
  MEMENTO_CUDA_TRY(cudaEventRecord(p.start, s));
  p.started = true;
}

void CudaEventClock::record_end(std::size_t slot, void* stream) {
  std::lock_guard lock(mutex_);
  Impl::Pair& p = impl_->pairs.at(slot);
  MEMENTO_CUDA_TRY(cudaEventRecord(p.end, static_cast<cudaStream_t>(stream)));
  p.ended = true;
}

CudaEventClock::Reading CudaEventClock::read(std::size_t slot) {
  using State = Reading::State;
  std::lock_guard lock(mutex_);
  Impl::Pair& p = impl_->pairs.at(slot);
  if (!p.started || !p.ended) return {State::lost};
  DeviceScope scope(impl_->device);
  const cudaError_t done = cudaEventQuery(p.end);
  if (done == cudaErrorNotReady) {
    (void)cudaGetLastError();
    return {State::pending};
  }
  float start_ms = 0;
  float end_ms = 0;
  if (!MEMENTO_CUDA_LOG(done) ||
      !MEMENTO_CUDA_LOG(cudaEventElapsedTime(&start_ms, impl_->anchor, p.start)) ||
      !MEMENTO_CUDA_LOG(cudaEventElapsedTime(&end_ms, impl_->anchor, p.end)))
    return {State::lost};
  return {State::ready, impl_->anchor_host + start_ms / 1e3, impl_->anchor_host + end_ms / 1e3};
}

void CudaEventClock::release(std::size_t slot) {
  std::lock_guard lock(mutex_);
  Impl::Pair& p = impl_->pairs.at(slot);
  p.started = p.ended = false;
  impl_->free.push_back(slot);
}

void CudaEventClock::reanchor() {
  std::lock_guard lock(mutex_);
  if (impl_->device < 0) return;
  DeviceScope scope(impl_->device);
  impl_->anchor_on(impl_->last_stream);
}

#else  // no cuda backend in this build

struct CudaEventClock::Impl {};

bool CudaEventClock::available() noexcept { return false; }

CudaEventClock::CudaEventClock(std::function<double()>) {
  MEMENTO_FAIL(LogicError, "CudaEventClock: this build has no cuda backend");
}
CudaEventClock::~CudaEventClock() = default;
std::size_t CudaEventClock::acquire() { return 0; }
void CudaEventClock::record_start(std::size_t, void*) {}
void CudaEventClock::record_end(std::size_t, void*) {}
CudaEventClock::Reading CudaEventClock::read(std::size_t) { return {Reading::State::lost}; }
void CudaEventClock::release(std::size_t) {}
void CudaEventClock::reanchor() {}

#endif

}  // namespace memento
