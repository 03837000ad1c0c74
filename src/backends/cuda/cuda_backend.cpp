#include "backends/cuda/cuda_backend.hpp"

#include <fmt/format.h>

#include <cmath>
#include <cstdint>
#include <memory>
#include <new>
#include <string>
#include <utility>

#include "backends/cuda/device_guard.hpp"
#include "backends/numa.hpp"
#include "common/cuda_try.hpp"
#include "common/log.hpp"
#include "memento/backends.hpp"
#include "memento/device_profile.hpp"
#include "memento/error.hpp"

namespace memento {
namespace {

// The allocator relies on this alignment for the blocks it carves out of a segment.
constexpr std::uintptr_t kSegmentAlignment = 512;

cudaMemcpyKind memcpy_kind(CopyKind kind) noexcept {
  switch (kind) {
    case CopyKind::host_to_device:
      return cudaMemcpyHostToDevice;
    case CopyKind::device_to_host:
      return cudaMemcpyDeviceToHost;
    case CopyKind::device_to_device:
      return cudaMemcpyDeviceToDevice;
    case CopyKind::host_to_host:
      return cudaMemcpyHostToHost;
  }
  return cudaMemcpyDefault;  // unreachable for valid enumerators; UVA infers the direction
}

std::string error_text(cudaError_t err) {
  return fmt::format("{} ({})", cudaGetErrorName(err), cudaGetErrorString(err));
}

}  // namespace

CudaBackend::CudaBackend(int device) : device_(device) {
  int count = 0;
  if (cudaError_t err = cudaGetDeviceCount(&count); err != cudaSuccess) {
    (void)cudaGetLastError();
    // Without any NVIDIA driver cudart reports an "insufficient" one, which misleads.
    const char* hint = err == cudaErrorInsufficientDriver
                           ? "; is the NVIDIA driver installed and new enough?"
                           : "; is a GPU visible (CUDA_VISIBLE_DEVICES, container runtime)?";
    MEMENTO_FAIL(BackendError,
                 "no CUDA device: cudaGetDeviceCount returned " + error_text(err) + hint);
  }
  MEMENTO_EXPECTS(count > 0,
                  "no CUDA device: cudaGetDeviceCount found none; is a GPU visible "
                  "(CUDA_VISIBLE_DEVICES, container runtime)?",
                  BackendError);
  MEMENTO_EXPECTS(
      device >= 0 && device < count,
      fmt::format("invalid CUDA device ordinal {}: {} device(s) visible", device, count),
      BackendError);

  DeviceGuard guard(device_);
  cudaDeviceProp prop{};
  MEMENTO_CUDA_TRY(cudaGetDeviceProperties(&prop, device_));
  std::size_t free_bytes = 0;
  std::size_t total_bytes = 0;
  MEMENTO_CUDA_TRY(cudaMemGetInfo(&free_bytes, &total_bytes));
  char bus_id[32] = {};
  MEMENTO_CUDA_TRY(cudaDeviceGetPCIBusId(bus_id, static_cast<int>(sizeof bus_id), device_));

  info_.kind = BackendKind::cuda;
  info_.name = fmt::format("cuda:{} ({})", device_, prop.name);
  info_.capacity = total_bytes;
  info_.numa_node = numa::node_of_pci_bus_id(bus_id);
  // A real GPU: its memory is reached by copies, its clock is the wall clock.
  info_.executes_kernels = true;
  info_.holds_data = true;
  info_.host_addressable_memory = false;
  info_.virtual_clock = false;
  info_.supports_bf16 = true;
  info_.numa_node_nearest_device = true;
  // The cost model's rates: the datasheet of this GPU's family. Without them the runtime
  // prices matrix products like pointwise kernels and its recompute choices thrash.
  if (const DeviceProfile* d = datasheet_profile_of_gpu(prop.name)) {
    info_.matrix_flops = d->matrix_flops;
    info_.vector_flops = d->vector_flops;
    info_.memory_bandwidth = d->hbm_bandwidth;
    info_.h2d_bandwidth = d->h2d_bandwidth;
    info_.d2h_bandwidth = d->d2h_bandwidth;
    info_.rates_source = fmt::format("datasheet: {} (sim profile {})", d->description, d->name);
  } else {
    log::warning(
        fmt::format("{}: no datasheet rates are known for this GPU, so the cost model "
                    "uses 1e12 FLOP/s and bytes/s for every kernel (known families: "
                    "H200, H100, A100, RTX 4090, L4)",
                    info_.name));
  }
  streams_.push_back(StreamSlot{nullptr, false});  // Stream{0}: the legacy default stream
}

CudaBackend::~CudaBackend() {
  DeviceGuard guard(device_, std::nothrow);
  // Queued copies may still read or write memory released below. Adopted streams are not
  // waited for: their owner may already have destroyed them.
  for (const StreamSlot& s : streams_)
    if (s.owned || s.handle == nullptr) (void)MEMENTO_CUDA_LOG(cudaStreamSynchronize(s.handle));
  for (auto& [id, event] : events_) (void)MEMENTO_CUDA_LOG(cudaEventDestroy(event));
  for (const StreamSlot& s : streams_)
    if (s.owned) (void)MEMENTO_CUDA_LOG(cudaStreamDestroy(s.handle));
  if (!segments_.empty())
    log::warning(
        fmt::format("cuda backend destroyed with {} segment(s) still allocated", segments_.size()));
  for (auto& [ptr, bytes] : segments_) (void)MEMENTO_CUDA_LOG(cudaFree(ptr));
  if (!pinned_.empty())
    log::warning(fmt::format("cuda backend destroyed with {} pinned buffer(s) still allocated",
                             pinned_.size()));
  for (auto& [ptr, block] : pinned_) release_pinned(ptr, block);
}

void* CudaBackend::allocate_segment(std::size_t bytes) {
  MEMENTO_EXPECTS(bytes > 0, "allocate_segment: size must be positive");
  DeviceGuard guard(device_);
  void* ptr = nullptr;
  cudaError_t err = cudaMalloc(&ptr, bytes);
  if (err == cudaErrorMemoryAllocation) {
    (void)cudaGetLastError();  // a full device is an answer, not an error to leave pending
    return nullptr;
  }
  if (err != cudaSuccess)
    cuda_detail::raise(__FILE__, __LINE__, fmt::format("cudaMalloc({} bytes)", bytes).c_str(), err);
  if (reinterpret_cast<std::uintptr_t>(ptr) % kSegmentAlignment != 0) {
    (void)MEMENTO_CUDA_LOG(cudaFree(ptr));
    MEMENTO_FAIL(BackendError, fmt::format("cudaMalloc returned {}, which is not {}-byte aligned",
                                           ptr, kSegmentAlignment));
  }
  try {
    std::lock_guard lock(mutex_);
    segments_.emplace(ptr, bytes);
  } catch (...) {
    (void)MEMENTO_CUDA_LOG(cudaFree(ptr));
    throw;
  }
  segment_bytes_.fetch_add(bytes, std::memory_order_relaxed);
  return ptr;
}

void CudaBackend::free_segment(void* ptr, std::size_t bytes) noexcept {
  if (ptr == nullptr) return;
  {
    std::lock_guard lock(mutex_);
    auto it = segments_.find(ptr);
    if (it == segments_.end() || it->second != bytes) {
      log::error(fmt::format("cuda backend: free_segment({}, {}) does not match a live segment",
                             ptr, bytes));
      return;
    }
    segments_.erase(it);
  }
  segment_bytes_.fetch_sub(bytes, std::memory_order_relaxed);
  DeviceGuard guard(device_, std::nothrow);
  (void)MEMENTO_CUDA_LOG(cudaFree(ptr));
}

std::size_t CudaBackend::segment_bytes() const noexcept {
  return segment_bytes_.load(std::memory_order_relaxed);
}

void* CudaBackend::allocate_pinned(std::size_t bytes, int numa_node) {
  MEMENTO_EXPECTS(bytes > 0, "allocate_pinned: size must be positive");
  DeviceGuard guard(device_);
  PinnedBlock block{bytes, true};
  // Registering our own NUMA-placed pages keeps staging buffers near the GPU; cudaHostAlloc
  // places them wherever the calling thread happens to run.
  void* ptr = numa::allocate_on_node(bytes, numa_node);
  if (ptr != nullptr) {
    if (cudaError_t err = cudaHostRegister(ptr, bytes, cudaHostRegisterPortable);
        err != cudaSuccess) {
      (void)cudaGetLastError();
      numa::free(ptr, bytes);
      ptr = nullptr;
      if (!warned_register_.exchange(true))
        log::warning("cudaHostRegister failed with " + error_text(err) +
                     "; pinned memory now comes from cudaHostAlloc, without NUMA placement");
    }
  }
  if (ptr == nullptr) {
    block.registered = false;
    cudaError_t err = cudaHostAlloc(&ptr, bytes, cudaHostAllocPortable);
    if (err == cudaErrorMemoryAllocation) {
      (void)cudaGetLastError();
      return nullptr;
    }
    if (err != cudaSuccess)
      cuda_detail::raise(__FILE__, __LINE__, fmt::format("cudaHostAlloc({} bytes)", bytes).c_str(),
                         err);
  }
  try {
    std::lock_guard lock(mutex_);
    pinned_.emplace(ptr, block);
  } catch (...) {
    release_pinned(ptr, block);
    throw;
  }
  return ptr;
}

void CudaBackend::free_pinned(void* ptr, std::size_t bytes) noexcept {
  if (ptr == nullptr) return;
  PinnedBlock block;
  {
    std::lock_guard lock(mutex_);
    auto it = pinned_.find(ptr);
    if (it == pinned_.end() || it->second.bytes != bytes) {
      log::error(fmt::format("cuda backend: free_pinned({}, {}) does not match a live buffer", ptr,
                             bytes));
      return;
    }
    block = it->second;
    pinned_.erase(it);
  }
  DeviceGuard guard(device_, std::nothrow);
  release_pinned(ptr, block);
}

void CudaBackend::release_pinned(void* ptr, const PinnedBlock& block) noexcept {
  if (block.registered) {
    (void)MEMENTO_CUDA_LOG(cudaHostUnregister(ptr));
    numa::free(ptr, block.bytes);
  } else {
    (void)MEMENTO_CUDA_LOG(cudaFreeHost(ptr));
  }
}

Stream CudaBackend::create_stream() {
  DeviceGuard guard(device_);
  cudaStream_t handle = nullptr;
  MEMENTO_CUDA_TRY(cudaStreamCreateWithFlags(&handle, cudaStreamNonBlocking));
  try {
    std::lock_guard lock(mutex_);
    auto id = static_cast<std::uint32_t>(streams_.size());
    streams_.push_back(StreamSlot{handle, true});
    // Overwrites a stale adoption whose stream was destroyed and whose address was reused.
    stream_ids_[handle] = id;
    return Stream{id};
  } catch (...) {
    (void)MEMENTO_CUDA_LOG(cudaStreamDestroy(handle));
    throw;
  }
}

cudaStream_t CudaBackend::stream_handle(Stream stream) const {
  std::lock_guard lock(mutex_);
  MEMENTO_EXPECTS(
      stream.id < streams_.size(),
      fmt::format("cuda backend: unknown stream {} ({} exist)", stream.id, streams_.size()));
  return streams_[stream.id].handle;
}

void* CudaBackend::native_handle(Stream stream) const { return stream_handle(stream); }

Stream CudaBackend::stream_from_native(void* handle) {
  auto native = static_cast<cudaStream_t>(handle);
  if (native == nullptr || native == cudaStreamLegacy) return default_stream();
  // The per-thread stream names a different stream on every thread, so work recorded
  // against it from another thread (the allocator's) would be ordered against the wrong one.
  MEMENTO_EXPECTS(native != cudaStreamPerThread,
                  "cuda backend: cudaStreamPerThread cannot be adopted; its meaning depends on "
                  "the calling thread (build without per-thread default streams, or pass an "
                  "explicit stream)");
  {
    std::lock_guard lock(mutex_);
    if (auto it = stream_ids_.find(native); it != stream_ids_.end()) return Stream{it->second};
  }
#if CUDART_VERSION >= 12080
  int stream_device = -1;
  MEMENTO_CUDA_TRY(cudaStreamGetDevice(native, &stream_device));
  MEMENTO_EXPECTS(stream_device == device_,
                  fmt::format("cuda backend: stream {} belongs to cuda:{}, this backend is cuda:{}",
                              handle, stream_device, device_));
#endif
  std::lock_guard lock(mutex_);
  auto [it, inserted] =
      stream_ids_.try_emplace(native, static_cast<std::uint32_t>(streams_.size()));
  if (inserted) streams_.push_back(StreamSlot{native, false});
  return Stream{it->second};
}

void CudaBackend::synchronize(Stream stream) {
  cudaStream_t handle = stream_handle(stream);
  DeviceGuard guard(device_);
  MEMENTO_CUDA_TRY(cudaStreamSynchronize(handle));
  report_host_task_failure();
}

void CudaBackend::synchronize_all() {
  DeviceGuard guard(device_);
  MEMENTO_CUDA_TRY(cudaDeviceSynchronize());
  report_host_task_failure();
}

Event CudaBackend::create_event() {
  DeviceGuard guard(device_);
  cudaEvent_t event = nullptr;
  // Timing is never read, and timed events make cudaEventRecord/Query slower.
  MEMENTO_CUDA_TRY(cudaEventCreateWithFlags(&event, cudaEventDisableTiming));
  try {
    std::lock_guard lock(mutex_);
    std::uint32_t id = next_event_id_++;
    events_.emplace(id, event);
    return Event{id};
  } catch (...) {
    (void)MEMENTO_CUDA_LOG(cudaEventDestroy(event));
    throw;
  }
}

void CudaBackend::destroy_event(Event event) noexcept {
  cudaEvent_t handle = nullptr;
  {
    std::lock_guard lock(mutex_);
    auto it = events_.find(event.id);
    if (it == events_.end()) {
      log::error(fmt::format("cuda backend: destroy_event({}) of an unknown event", event.id));
      return;
    }
    handle = it->second;
    events_.erase(it);
  }
  DeviceGuard guard(device_, std::nothrow);
  (void)MEMENTO_CUDA_LOG(cudaEventDestroy(handle));
}

cudaEvent_t CudaBackend::event_handle(Event event) const {
  std::lock_guard lock(mutex_);
  auto it = events_.find(event.id);
  MEMENTO_EXPECTS(it != events_.end(),
                  fmt::format("cuda backend: unknown or destroyed event {}", event.id));
  return it->second;
}

void CudaBackend::record(Event event, Stream stream) {
  cudaEvent_t e = event_handle(event);
  cudaStream_t s = stream_handle(stream);
  DeviceGuard guard(device_);
  MEMENTO_CUDA_TRY(cudaEventRecord(e, s));
}

void CudaBackend::wait(Stream stream, Event event) {
  cudaEvent_t e = event_handle(event);
  cudaStream_t s = stream_handle(stream);
  DeviceGuard guard(device_);
  MEMENTO_CUDA_TRY(cudaStreamWaitEvent(s, e, 0));
}

bool CudaBackend::query(Event event) {
  cudaEvent_t e = event_handle(event);
  DeviceGuard guard(device_);
  cudaError_t err = cudaEventQuery(e);
  if (err == cudaErrorNotReady) {
    (void)cudaGetLastError();  // "not yet" is not an error, but cudart records it as one
    return false;
  }
  MEMENTO_CUDA_TRY(err);
  return true;
}

void CudaBackend::synchronize(Event event) {
  cudaEvent_t e = event_handle(event);
  DeviceGuard guard(device_);
  MEMENTO_CUDA_TRY(cudaEventSynchronize(e));
  report_host_task_failure();
}

void CudaBackend::copy_async(void* dst, const void* src, std::size_t bytes, CopyKind kind,
                             Stream stream) {
  if (bytes == 0) return;
  MEMENTO_EXPECTS(
      dst != nullptr && src != nullptr,
      fmt::format("copy_async: null pointer in a {}-byte {} copy", bytes, to_string(kind)));
  cudaStream_t s = stream_handle(stream);
  DeviceGuard guard(device_);
  MEMENTO_CUDA_TRY(cudaMemcpyAsync(dst, src, bytes, memcpy_kind(kind), s));
}

void CudaBackend::launch(Stream stream, Kernel kernel) {
  MEMENTO_EXPECTS(static_cast<bool>(kernel.cuda),
                  "kernel " + kernel.name + " has no CUDA implementation");
  cudaStream_t s = stream_handle(stream);
  DeviceGuard guard(device_);
  kernel.cuda(s);
  // Launch failures (bad configuration, no image for this GPU) only show up here.
  if (cudaError_t err = cudaGetLastError(); err != cudaSuccess)
    MEMENTO_FAIL(BackendError, "kernel " + kernel.name + " failed to launch: " + error_text(err));
}

double CudaBackend::now() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

std::unique_ptr<Backend> make_cuda_backend(int device) {
  return std::make_unique<CudaBackend>(device);
}

bool cuda_backend_compiled() noexcept { return true; }

int cuda_device_count() noexcept {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  return count;
}

}  // namespace memento
