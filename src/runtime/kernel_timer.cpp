#include "runtime/kernel_timer.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <utility>

#include "backends/sim/sim_backend.hpp"
#include "common/log.hpp"
#include "trace/chrome_trace.hpp"
#include "trace/cuda_event_clock.hpp"

namespace memento {

namespace {
// Past this many unresolved kernels (a caller that never ends a step), launches resolve
// what has completed as they go, so the list stays short.
constexpr std::size_t kResolveEvery = 4096;
}  // namespace

const char* to_string(KernelPhase phase) noexcept {
  switch (phase) {
    case KernelPhase::forward:
      return "forward";
    case KernelPhase::backward:
      return "backward";
    case KernelPhase::recompute:
      return "recompute";
    case KernelPhase::optimizer:
      return "optimizer";
    case KernelPhase::other:
      return "other";
  }
  return "other";
}

// Written by the stream's worker thread, read by the thread that resolves: `done` orders them.
struct KernelTimer::HostTimes {
  double start = 0;
  double end = 0;
  std::atomic<bool> done{false};
};

struct KernelTimer::Pending {
  std::string name;
  std::string op;
  KernelPhase phase = KernelPhase::other;
  KernelCost cost;
  Stream stream;
  bool accepted = false;  // the backend took the launch
  std::shared_ptr<HostTimes> host;
  std::size_t cuda_slot = 0;
  double start = 0;  // sim: the modelled times, known at launch
  double end = 0;
};

KernelTimer::KernelTimer(Backend& backend, ChromeTrace& trace) : backend_(backend), trace_(trace) {
  const DeviceInfo& info = backend.info();
  if ((sim_ = dynamic_cast<SimBackend*>(&backend)) != nullptr) {
    method_ = Method::sim;
  } else if (info.kind == BackendKind::host) {
    method_ = Method::host;  // the kernel's host body is what runs, on the stream's worker
  } else if (info.kind == BackendKind::cuda && CudaEventClock::available()) {
    method_ = Method::cuda;
    cuda_ = std::make_unique<CudaEventClock>([&backend] { return backend.now(); });
  }
}

KernelTimer::~KernelTimer() = default;

const char* KernelTimer::method() const noexcept {
  switch (method_) {
    case Method::host:
      return "host worker clock";
    case Method::cuda:
      return "cuda events";
    case Method::sim:
      return "sim model";
    case Method::none:
      return "none";
  }
  return "none";
}

void KernelTimer::name_stream(Stream stream, const std::string& name) {
  tracks_[stream.id] = "device: " + name;
}

const std::string& KernelTimer::track(Stream stream) {
  auto it = tracks_.find(stream.id);
  if (it == tracks_.end())
    it = tracks_.emplace(stream.id, fmt::format("device: stream {}", stream.id)).first;
  return it->second;
}

KernelTimer::Launch KernelTimer::prepare(Kernel& kernel, Stream stream, const LaunchTag& tag) {
  auto p = std::make_unique<Pending>();
  p->name = kernel.name;
  p->op = std::string(tag.op);
  p->phase = tag.phase;
  p->cost = kernel.cost;
  p->stream = stream;
  if (method_ == Method::host && kernel.host) {
    p->host = std::make_shared<HostTimes>();
    kernel.host = [inner = std::move(kernel.host), times = p->host, &backend = backend_] {
      struct Finish {  // a body that throws still ends its span
        HostTimes& t;
        Backend& b;
        ~Finish() {
          t.end = b.now();
          t.done.store(true, std::memory_order_release);
        }
      };
      times->start = backend.now();
      Finish finish{*times, backend};
      inner();
    };
  } else if (method_ == Method::cuda && kernel.cuda) {
    p->cuda_slot = cuda_->acquire();
    kernel.cuda = [inner = std::move(kernel.cuda), clock = cuda_.get(),
                   slot = p->cuda_slot](void* s) {
      clock->record_start(slot, s);
      inner(s);
      clock->record_end(slot, s);
    };
  }
  pending_.push_back(std::move(p));
  return {pending_.size() - 1};
}

void KernelTimer::launched(Launch launch) {
  Pending& p = *pending_.at(launch.index);
  p.accepted = true;
  if (method_ == Method::sim) {
    // The sim issued the kernel at max(stream tail, host clock, compute engine) and ran it
    // for the profile's duration: the stream's tail now is its end.
    p.end = sim_->stream_time(p.stream);
    p.start = p.end - sim_->profile().kernel_seconds(p.name, p.cost);
  }
  if (pending_.size() >= kResolveEvery) resolve(false);
}

void KernelTimer::abandon(Launch launch) noexcept {
  // Left unaccepted: resolve() drops it.
  if (launch.index < pending_.size()) pending_[launch.index]->accepted = false;
}

std::size_t KernelTimer::pending() const noexcept { return pending_.size(); }

void KernelTimer::emit(const Pending& p, double start, double end) {
  TraceArgs args{{"kernel", p.name}, {"phase", to_string(p.phase)}};
  if (!p.op.empty()) args.emplace_back("op", p.op);
  args.emplace_back("flops", p.cost.flops);
  args.emplace_back("bytes", p.cost.bytes);
  args.emplace_back("tensor_cores", p.cost.tensor_cores);
  if (p.cost.seconds) args.emplace_back("measured_seconds", *p.cost.seconds);
  trace_.complete(p.name, "kernel", track(p.stream), start, std::max(0.0, end - start),
                  std::move(args));
}

void KernelTimer::resolve(bool idle) {
  std::size_t kept = 0;
  std::size_t lost = 0;
  for (std::size_t i = 0; i < pending_.size(); ++i) {
    Pending& p = *pending_[i];
    bool done = true;
    if (!p.accepted) {
      if (method_ == Method::cuda) cuda_->release(p.cuda_slot);
    } else if (method_ == Method::sim) {
      emit(p, p.start, p.end);
    } else if (p.host) {
      if (p.host->done.load(std::memory_order_acquire))
        emit(p, p.host->start, p.host->end);
      else if (idle)
        ++lost;  // never ran (its stream failed before it): no time to show
      else
        done = false;
    } else if (method_ == Method::cuda) {
      const CudaEventClock::Reading r = cuda_->read(p.cuda_slot);
      if (r.state == CudaEventClock::Reading::State::pending && !idle) {
        done = false;
      } else {
        if (r.state == CudaEventClock::Reading::State::ready)
          emit(p, r.start, r.end);
        else
          ++lost;
        cuda_->release(p.cuda_slot);
      }
    }
    if (!done) pending_[kept++] = std::move(pending_[i]);
  }
  pending_.resize(kept);
  if (lost > 0 && lost_ == 0)
    log::warning(
        fmt::format("trace: {} kernel(s) have no device time (they did not run, or their "
                    "timing events could not be read); they are left out",
                    lost));
  lost_ += lost;
  if (idle && method_ == Method::cuda && pending_.empty()) cuda_->reanchor();
}

}  // namespace memento
