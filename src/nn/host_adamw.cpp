#include "nn/host_adamw.hpp"

#include <fmt/format.h>

#include <cstring>

#include "memento/error.hpp"
#include "nn/kernels/cpu/kernels_cpu.hpp"
#include "nn/kernels/cuda/kernels_cuda.hpp"  // bf16 conversions: constexpr host code

namespace memento::nn {

HostAdamW::HostAdamW(Tape& tape, const AdamWOptions& options)
    : tape_(tape),
      backend_(tape.backend()),
      options_(options),
      stream_(backend_.create_stream()),
      event_(backend_.create_event()) {
  MEMENTO_EXPECTS(options.host_update_bandwidth > 0,
                  "host AdamW: host_update_bandwidth must be positive", ConfigError);
}

HostAdamW::~HostAdamW() {
  try {
    backend_.synchronize(stream_);
  } catch (const std::exception&) {
    // Teardown: nothing left to report to.
  }
  for (auto& [id, s] : slots_) {
    backend_.free_pinned(s.grad_host, s.grad_bytes);
    backend_.free_pinned(s.param_host, s.param_bytes);
  }
  backend_.destroy_event(event_);
}

void* HostAdamW::pinned(std::size_t bytes) {
  void* p = backend_.allocate_pinned(bytes, backend_.info().numa_node);
  MEMENTO_EXPECTS(p != nullptr,
                  fmt::format("host AdamW: the host refused {} bytes of pinned memory", bytes),
                  OutOfMemory);
  host_bytes_ += bytes;
  return p;
}

void HostAdamW::after_compute() {
  backend_.record(event_, tape_.runtime().compute_stream());
  backend_.wait(stream_, event_);
}

HostAdamW::Slot& HostAdamW::slot(TensorId param, std::size_t grad_bytes) {
  if (auto it = slots_.find(param); it != slots_.end()) return it->second;
  Slot s;
  s.grad_bytes = grad_bytes;
  s.param_bytes = tape_.bytes(param);
  MEMENTO_EXPECTS(s.param_bytes * 2 == grad_bytes || s.param_bytes == grad_bytes,
                  fmt::format("host AdamW: parameter {} has {} bytes for a {}-byte fp32 "
                              "gradient; accepted: fp32 or bf16 parameters",
                              param, s.param_bytes, grad_bytes),
                  LogicError);
  s.grad_host = pinned(grad_bytes);
  try {
    s.param_host = pinned(s.param_bytes);
  } catch (...) {
    backend_.free_pinned(s.grad_host, grad_bytes);
    host_bytes_ -= grad_bytes;
    throw;
  }
  order_.push_back(param);
  return slots_.emplace(param, std::move(s)).first->second;
}

void HostAdamW::begin_step() {
  for (auto& [id, s] : slots_) s.pending = false;
}

void HostAdamW::take(TensorId param, void* grad, std::size_t bytes) {
  // The block is ours from here: it goes back whatever happens.
  try {
    Slot& s = slot(param, bytes);
    after_compute();
    backend_.copy_async(s.grad_host, grad, bytes, CopyKind::device_to_host, stream_);
    tape_.allocator().record_stream(grad, stream_);
    s.pending = true;
  } catch (...) {
    tape_.allocator().deallocate(grad);
    throw;
  }
  tape_.allocator().deallocate(grad);
}

void HostAdamW::cpu_step(TensorId param, Slot& s, int t) {
  const std::size_t n = s.grad_bytes / sizeof(float);
  const bool bf16 = s.param_bytes != s.grad_bytes;
  if (!s.initialised) {
    // The master weights start as the device's parameters (bf16 widens exactly).
    void* p = tape_.runtime().use(param);
    after_compute();
    backend_.copy_async(s.param_host, p, s.param_bytes, CopyKind::device_to_host, stream_);
    backend_.synchronize(stream_);
    tape_.runtime().release(param);
    s.master.resize(n);
    if (bf16) {
      const auto* h = static_cast<const cuda::bf16*>(s.param_host);
      for (std::size_t i = 0; i < n; ++i) s.master[i] = cuda::to_float(h[i]);
    } else {
      std::memcpy(s.master.data(), s.param_host, s.grad_bytes);
    }
    s.m.assign(n, 0.0f);
    s.v.assign(n, 0.0f);
    s.initialised = true;
  }
  const AdamWOptions& o = options_;
  cpu::adamw_update(s.master.data(), static_cast<const float*>(s.grad_host), s.m.data(), s.v.data(),
                    n, o.lr, o.beta1, o.beta2, o.eps, o.weight_decay, t);
  if (bf16) {
    auto* h = static_cast<cuda::bf16*>(s.param_host);
    for (std::size_t i = 0; i < n; ++i) h[i] = cuda::to_bf16(s.master[i]);
  } else {
    std::memcpy(s.param_host, s.master.data(), s.grad_bytes);
  }
}

void HostAdamW::update(int t) {
  backend_.synchronize(stream_);  // every gradient is on the host
  // The pinned copies are real bytes to update, or (sim) address space only.
  const bool holds_data = backend_.info().holds_data;
  double traffic = 0;
  std::vector<TensorId> updated;
  for (TensorId param : order_) {
    Slot& s = slots_.at(param);
    if (!s.pending) continue;  // no gradient reached it this step
    s.pending = false;
    updated.push_back(param);
    // Read p, g, m, v and write p, m, v in fp32, then the parameter in its dtype.
    traffic += 7.0 * static_cast<double>(s.grad_bytes) + static_cast<double>(s.param_bytes);
    if (holds_data) cpu_step(param, s, t);
  }
  // The time the step takes on the CPU: already spent on a real clock, modelled on sim's.
  if (backend_.info().virtual_clock) backend_.host_work(traffic / options_.host_update_bandwidth);
  // The backward's last reads of the parameters come before their overwrite.
  after_compute();
  for (TensorId param : updated) {
    Slot& s = slots_.at(param);
    void* p = tape_.runtime().use(param);
    backend_.copy_async(p, s.param_host, s.param_bytes, CopyKind::host_to_device, stream_);
    tape_.runtime().release(param);
  }
  // The next forward reads the new parameters.
  backend_.record(event_, stream_);
  backend_.wait(tape_.runtime().compute_stream(), event_);
}

}  // namespace memento::nn
