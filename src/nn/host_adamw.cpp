#include "nn/host_adamw.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

#include "backends/numa.hpp"
#include "memento/error.hpp"
#include "nn/kernels/cpu/kernels_cpu.hpp"
#include "nn/kernels/cuda/kernels_cuda.hpp"  // bf16 conversions: constexpr host code

namespace memento::nn {
namespace {

// Below this many elements a parameter's update runs on the stream's thread alone: waking
// the pool costs more than it saves.
constexpr std::size_t kParallelMin = std::size_t{1} << 15;

// The device-side rounding of an fp32 gradient to bf16 for the link.
Kernel round_to_bf16(void* out, const void* in, std::size_t n) {
  Kernel k;
  k.name = "gradient to bf16";
  k.cost = {static_cast<double>(n), 6.0 * static_cast<double>(n), false};
  k.host = [out, in, n] {
    cpu::f32_to_bf16(static_cast<std::uint16_t*>(out), static_cast<const float*>(in), n);
  };
#if MEMENTO_HAS_CUDA
  k.cuda = [out, in, n](void* stream) {
    cuda::f32_to_bf16(static_cast<cuda::bf16*>(out), static_cast<const float*>(in), n, stream);
  };
#endif
  return k;
}

}  // namespace

HostAdamW::HostAdamW(Tape& tape, const AdamWOptions& options)
    : tape_(tape),
      backend_(tape.backend()),
      options_(options),
      d2h_(backend_.create_stream()),
      cpu_(backend_.create_stream()),
      h2d_(backend_.create_stream()),
      event_(backend_.create_event()) {
  MEMENTO_EXPECTS(options.host_update_bandwidth > 0,
                  "host AdamW: host_update_bandwidth must be positive", ConfigError);
  MEMENTO_EXPECTS(options.host_threads >= 0,
                  fmt::format("host AdamW: host_threads={}; accepted: 0 (the hardware's) or more",
                              options.host_threads),
                  ConfigError);
  const DeviceInfo& info = backend_.info();
  if (info.holds_data) {
    const int node = info.numa_node_nearest_device ? info.numa_node : -1;
    pool_ = std::make_unique<cpu::ThreadPool>(options.host_threads, node);
  }
}

HostAdamW::~HostAdamW() {
  for (Stream s : {d2h_, cpu_, h2d_}) {
    try {
      backend_.synchronize(s);
    } catch (const std::exception&) {
      // Teardown: nothing left to report to.
    }
  }
  for (auto& [id, s] : slots_) release(s);
  backend_.destroy_event(event_);
}

void HostAdamW::release(Slot& s) noexcept {
  if (s.grad_host != nullptr) backend_.free_pinned(s.grad_host, s.link_bytes);
  if (s.param_host != nullptr) backend_.free_pinned(s.param_host, s.param_bytes);
  numa::free(s.state.data, s.state.bytes);
}

void* HostAdamW::pinned(std::size_t bytes) {
  void* p = backend_.allocate_pinned(bytes, backend_.info().numa_node);
  MEMENTO_EXPECTS(p != nullptr,
                  fmt::format("host AdamW: the host refused {} bytes of pinned memory", bytes),
                  OutOfMemory);
  host_bytes_ += bytes;
  return p;
}

void HostAdamW::order(Stream from, Stream to) {
  backend_.record(event_, from);
  backend_.wait(to, event_);
}

HostAdamW::Slot& HostAdamW::slot(TensorId param, std::size_t grad_bytes) {
  if (auto it = slots_.find(param); it != slots_.end()) return it->second;
  Slot s;
  s.n = grad_bytes / sizeof(float);
  s.param_bytes = tape_.bytes(param);
  s.link_bytes = options_.link_bf16 ? s.n * sizeof(cuda::bf16) : grad_bytes;
  MEMENTO_EXPECTS(s.param_bytes * 2 == grad_bytes || s.param_bytes == grad_bytes,
                  fmt::format("host AdamW: parameter {} has {} bytes for a {}-byte fp32 "
                              "gradient; accepted: fp32 or bf16 parameters",
                              param, s.param_bytes, grad_bytes),
                  LogicError);
  try {
    s.grad_host = pinned(s.link_bytes);
    s.param_host = pinned(s.param_bytes);
    if (backend_.info().holds_data) {
      const DeviceInfo& info = backend_.info();
      s.state.bytes = 3 * grad_bytes;
      // Not touched here: the pool's threads touch it first, on their node.
      s.state.data = static_cast<float*>(numa::allocate_on_node(
          s.state.bytes, info.numa_node_nearest_device ? info.numa_node : -1));
      MEMENTO_EXPECTS(s.state.data != nullptr,
                      fmt::format("host AdamW: the host refused {} bytes for master weights, m "
                                  "and v",
                                  s.state.bytes),
                      OutOfMemory);
    }
  } catch (...) {
    if (s.grad_host != nullptr) host_bytes_ -= s.link_bytes;
    if (s.param_host != nullptr) host_bytes_ -= s.param_bytes;
    release(s);
    throw;
  }
  order_.push_back(param);
  return slots_.emplace(param, s).first->second;
}

void HostAdamW::begin_step(int t, bool apply) {
  t_ = t;
  apply_ = apply;
  for (auto& [id, s] : slots_) s.pending = false;
}

void* HostAdamW::round_gradient(Slot& s, void* grad) {
  // On the compute stream, in line with the backward (a kernel queued behind the copies on
  // the optimizer's stream would hold up the backward's kernels on sim's in-order compute
  // engine), into a block of its own that goes back once the copy has read it.
  const Stream compute = tape_.runtime().compute_stream();
  void* half = tape_.allocator().allocate(s.link_bytes, compute);
  try {
    tape_.runtime().launch(compute, round_to_bf16(half, grad, s.n));
  } catch (...) {
    tape_.allocator().deallocate(half);
    throw;
  }
  return half;
}

void HostAdamW::take(TensorId param, void* grad, std::size_t bytes) {
  // The block is ours from here: it goes back whatever happens.
  try {
    Slot& s = slot(param, bytes);
    void* half = options_.link_bf16 ? round_gradient(s, grad) : nullptr;
    // After the backward's last read of the parameter and last write of its gradient.
    try {
      order(tape_.runtime().compute_stream(), d2h_);
      if (!s.downloaded) {
        // The master weights start as the device's parameter (bf16 widens exactly).
        void* p = tape_.runtime().use(param);
        try {
          backend_.copy_async(s.param_host, p, s.param_bytes, CopyKind::device_to_host, d2h_);
        } catch (...) {
          tape_.runtime().release(param);
          throw;
        }
        tape_.runtime().release(param);
        s.downloaded = true;
      }
      backend_.copy_async(s.grad_host, half != nullptr ? half : grad, s.link_bytes,
                          CopyKind::device_to_host, d2h_);
      if (half != nullptr) tape_.allocator().record_stream(half, d2h_);
    } catch (...) {
      if (half != nullptr) tape_.allocator().deallocate(half);
      throw;
    }
    if (half != nullptr) tape_.allocator().deallocate(half);
    tape_.allocator().record_stream(grad, d2h_);
    if (apply_ && options_.host_overlap) {
      order(d2h_, cpu_);
      queue_update(param, s, t_);
    }
    if (apply_ && !options_.host_overlap) s.pending = true;
  } catch (...) {
    tape_.allocator().deallocate(grad);
    throw;
  }
  tape_.allocator().deallocate(grad);
}

void HostAdamW::queue_update(TensorId param, Slot& s, int t) {
  const bool first = !s.initialised;
  s.initialised = true;
  const bool bf16_param = s.param_bytes != s.n * sizeof(float);
  HostTask task;
  task.name = "adamw";
  // Read the gradient, read and write p, m, v in fp32, write the parameter in its dtype.
  task.seconds = (static_cast<double>(s.link_bytes) + 24.0 * static_cast<double>(s.n) +
                  static_cast<double>(s.param_bytes)) /
                 options_.host_update_bandwidth;
  if (backend_.info().holds_data) {
    cpu::AdamWBuffers b;
    b.master = s.state.data;
    b.m = b.master + s.n;
    b.v = b.m + s.n;
    if (options_.link_bf16) {
      b.grad_bf16 = static_cast<const std::uint16_t*>(s.grad_host);
    } else {
      b.grad_f32 = static_cast<const float*>(s.grad_host);
    }
    if (bf16_param) {
      b.out_bf16 = static_cast<std::uint16_t*>(s.param_host);
    } else {
      b.out_f32 = static_cast<float*>(s.param_host);
    }
    const AdamWOptions& o = options_;
    const cpu::AdamWScalars scalars{o.lr, o.beta1, o.beta2, o.eps, o.weight_decay, t};
    task.fn = [b, scalars, first, bf16_param, n = s.n, param_host = s.param_host,
               pool = pool_.get()] {
      const auto part = [&](int i, int parts) {
        const cpu::Range r = cpu::split(n, i, parts);
        if (first) {
          if (bf16_param) {
            const auto* h = static_cast<const cuda::bf16*>(param_host);
            for (std::size_t j = r.begin; j < r.end; ++j) b.master[j] = cuda::to_float(h[j]);
          } else {
            std::memcpy(b.master + r.begin, static_cast<const float*>(param_host) + r.begin,
                        (r.end - r.begin) * sizeof(float));
          }
          std::fill(b.m + r.begin, b.m + r.end, 0.0f);
          std::fill(b.v + r.begin, b.v + r.end, 0.0f);
        }
        cpu::adamw_host_update(b, r.begin, r.end, scalars);
      };
      if (n < kParallelMin) {
        part(0, 1);
      } else {
        pool->run(part);
      }
    };
  }
  backend_.launch_host(cpu_, std::move(task));
  // The upload: after the update, and so after the backward's last read of the parameter
  // (the grad-ready point, which the gradient's copy waited for).
  order(cpu_, h2d_);
  void* p = tape_.runtime().use(param);
  try {
    backend_.copy_async(p, s.param_host, s.param_bytes, CopyKind::host_to_device, h2d_);
  } catch (...) {
    tape_.runtime().release(param);
    throw;
  }
  tape_.runtime().release(param);
}

void HostAdamW::update(int t) {
  if (!options_.host_overlap) {
    // The baseline: every update after the backward and the last gradient's copy.
    order(tape_.runtime().compute_stream(), d2h_);
    order(d2h_, cpu_);
    for (TensorId param : order_) {
      Slot& s = slots_.at(param);
      if (!s.pending) continue;
      s.pending = false;
      queue_update(param, s, t);
    }
  }
  // The next forward reads the new parameters.
  order(h2d_, tape_.runtime().compute_stream());
  // The tail: a failed copy or host task is reported here.
  for (Stream s : {d2h_, cpu_, h2d_}) backend_.synchronize(s);
}

}  // namespace memento::nn
