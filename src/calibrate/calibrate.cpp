// measure_device: the probes `memento calibrate --device host|cuda` runs.
#include "calibrate/calibrate.hpp"

#include <fmt/chrono.h>
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <ctime>
#include <functional>
#include <vector>

#include "backends/sim/copy_contention.hpp"
#include "calibrate/kernel_table.hpp"
#include "memento/error.hpp"
#include "nn/kernels/cpu/adamw_host.hpp"
#include "nn/kernels/cpu/thread_pool.hpp"
#include "nn/ops/ops.hpp"

namespace memento::calibrate {
namespace {

void say(const CalibrateOptions& o, const std::string& line) {
  if (o.progress) o.progress(line);
}

// Seconds `work` takes from its issue to its stream's completion, median of `repeats`.
template <class Work>
double timed(Backend& b, Stream s, int repeats, Work&& work) {
  std::vector<double> t;
  for (int i = 0; i < repeats; ++i) {
    b.synchronize_all();
    const double start = b.now();
    work();
    b.synchronize(s);
    t.push_back(b.now() - start);
  }
  return median(std::move(t));
}

Kernel empty_kernel() {
  Kernel k;
  k.name = "empty";
  k.host = [] {};
  k.cuda = [](void*) {};
  return k;
}

// Device memory of `bytes`, zeroed through a copy from a zeroed pinned buffer (uninitialised
// floats could be NaNs or denormals, which are slow on a CPU).
struct Buffers {
  Backend& b;
  std::size_t bytes;
  void* host = nullptr;
  std::vector<void*> device;
  Buffers(Backend& backend, std::size_t n, int count) : b(backend), bytes(n) {
    host = b.allocate_pinned(bytes, b.info().numa_node);
    MEMENTO_EXPECTS(host != nullptr, fmt::format("calibrate: no {} bytes of pinned memory", bytes),
                    OutOfMemory);
    std::memset(host, 0, bytes);
    for (int i = 0; i < count; ++i) {
      void* d = b.allocate_segment(bytes);
      MEMENTO_EXPECTS(d != nullptr, fmt::format("calibrate: no {} bytes of device memory", bytes),
                      OutOfMemory);
      device.push_back(d);
      b.copy_async(d, host, bytes, CopyKind::host_to_device, Backend::default_stream());
    }
    b.synchronize_all();
  }
  ~Buffers() {
    try {
      b.synchronize_all();
    } catch (const std::exception&) {
      // Teardown of a probe: the error reached the caller already.
    }
    for (void* d : device) b.free_segment(d, bytes);
    b.free_pinned(host, bytes);
  }
  Buffers(const Buffers&) = delete;
  Buffers& operator=(const Buffers&) = delete;
};

// One copy of `o.copy_bytes` each way between two buffer sets, on streams of their own.
struct Links {
  Backend& b;
  const CalibrateOptions& o;
  double round_trip;
  Buffers one{b, o.copy_bytes, 2};
  Buffers two{b, o.copy_bytes, 1};
  Stream up = b.create_stream();
  Stream down = b.create_stream();

  void issue(CopyKind kind) {
    if (kind == CopyKind::host_to_device)
      b.copy_async(two.device[0], two.host, o.copy_bytes, kind, up);
    else if (kind == CopyKind::device_to_host)
      b.copy_async(one.host, one.device[1], o.copy_bytes, kind, down);
    else
      b.copy_async(one.device[0], one.device[1], o.copy_bytes, kind, down);
  }
  // Seconds of `kinds` issued together after `before` (the work they run under), from their
  // issue to the end of the last of them.
  template <class Before>
  double once(std::initializer_list<CopyKind> kinds, Before&& before) {
    b.synchronize_all();
    before();
    const double start = b.now();
    for (CopyKind kind : kinds) issue(kind);
    b.synchronize(up);
    b.synchronize(down);
    const double t = std::max(1e-9, b.now() - start - round_trip);
    b.synchronize_all();
    return t;
  }
  double once(std::initializer_list<CopyKind> kinds) {
    return once(kinds, [] {});
  }
};

// The median over `repeats` of `measure()`. Where it returns a ratio, each repeat times what
// it compares back to back, so that a slow spell of a shared machine falls on both sides.
template <class Measure>
double median_of(int repeats, Measure&& measure) {
  std::vector<double> r;
  for (int i = 0; i < repeats; ++i) r.push_back(measure());
  return median(std::move(r));
}

void measure_links(Links& l, DeviceProfile& p) {
  const double n = static_cast<double>(l.o.copy_bytes);
  const int repeats = l.o.repeats;
  p.h2d_bandwidth = n / median_of(repeats, [&] { return l.once({CopyKind::host_to_device}); });
  p.d2h_bandwidth = n / median_of(repeats, [&] { return l.once({CopyKind::device_to_host}); });
  // A device-to-device copy reads and writes.
  p.hbm_bandwidth =
      2 * n / median_of(repeats, [&] { return l.once({CopyKind::device_to_device}); });
  // Both ways at once, h2d issued first: the factor by which the sim must slow the later
  // copy to end the pair when it ended here.
  p.copy_slowdown_both_ways = median_of(repeats, [&] {
    const double up = l.once({CopyKind::host_to_device});
    const double down = l.once({CopyKind::device_to_host});
    return sim::both_ways_factor(up, down,
                                 l.once({CopyKind::host_to_device, CopyKind::device_to_host}));
  });
  say(l.o, fmt::format("links: h2d {:.1f} GB/s, d2h {:.1f} GB/s; both at once, the later "
                       "moves {:.2f}x slower beside the other; device memory copy {:.1f} GB/s",
                       p.h2d_bandwidth / 1e9, p.d2h_bandwidth / 1e9, p.copy_slowdown_both_ways,
                       p.hbm_bandwidth / 1e9));
}

// Copies against kernels: square matrix products on the compute stream and a d2h copy of
// about the same length, alone and together (the overlap); then each direction's copy
// under four times its length of products, against the copy alone (the slowdown: a step's
// offloads and prefetches run under kernels).
void measure_copies_under_kernels(Links& l, DeviceProfile& p) {
  Backend& b = l.b;
  const int side = 512;
  const nn::DType dtype = b.info().supports_bf16 ? nn::DType::bf16 : nn::DType::f32;
  const std::size_t mat = static_cast<std::size_t>(side) * side * nn::dtype_bytes(dtype);
  Buffers m(b, mat, 3);
  const nn::OpPtr op = nn::make_linear(side, side, side, false, dtype);
  const Storage in[2] = {{m.device[0], mat}, {m.device[1], mat}};
  const Kernel gemm = op->make_kernel(in, {m.device[2], mat}, RngState{});
  const Stream compute = Backend::default_stream();
  // One product's time, from ten back to back (a single one would carry the round trip).
  const double one = timed(b, compute, l.o.repeats,
                           [&] {
                             for (int i = 0; i < 10; ++i) b.launch(compute, gemm);
                           }) /
                     10;
  const double copy = l.once({CopyKind::device_to_host});
  const int count = std::clamp(static_cast<int>(copy / std::max(one, 1e-9)), 1, 10000);
  const auto gemms = [&](int times) {
    for (int i = 0; i < times * count; ++i) b.launch(compute, gemm);
  };
  p.copy_overlap = median_of(l.o.repeats, [&] {
    const double kernels = timed(b, compute, 1, [&] { gemms(1); });
    const double alone = l.once({CopyKind::device_to_host});
    const double both = timed(b, compute, 1, [&] {
      l.issue(CopyKind::device_to_host);
      gemms(1);
      b.synchronize(l.down);
    });
    return std::clamp((kernels + alone - both) / std::min(kernels, alone), 0.0, 1.0);
  });
  const auto slowdown = [&](CopyKind kind) {
    return median_of(l.o.repeats, [&] {
      const double alone = l.once({kind});
      return l.once({kind}, [&] { gemms(4); }) / alone;
    });
  };
  const double h2d = slowdown(CopyKind::host_to_device);
  const double d2h = slowdown(CopyKind::device_to_host);
  p.copy_slowdown_under_kernels = std::max(1.0, (h2d + d2h) / 2);
  say(l.o, fmt::format("copies and {} matrix products of about a copy's length: {:.0f}% of the "
                       "shorter hidden; under products copies take {:.2f}x (h2d) and {:.2f}x "
                       "(d2h) their time alone",
                       count, p.copy_overlap * 100, h2d, d2h));
}

void measure_allocation(Backend& b, const CalibrateOptions& o, DeviceProfile& p) {
  std::vector<double> alloc, release;
  for (int i = 0; i < o.repeats; ++i) {
    const double t0 = b.now();
    void* d = b.allocate_segment(o.copy_bytes);
    const double t1 = b.now();
    MEMENTO_EXPECTS(d != nullptr, "calibrate: the device refused a segment", OutOfMemory);
    b.free_segment(d, o.copy_bytes);
    alloc.push_back(t1 - t0);
    release.push_back(b.now() - t1);
  }
  p.segment_allocate_seconds = median(alloc);
  p.segment_free_seconds = median(release);
  // The order of addresses: two segments held at once, the second below the first or not.
  void* first = b.allocate_segment(o.copy_bytes);
  void* second = b.allocate_segment(o.copy_bytes);
  MEMENTO_EXPECTS(first != nullptr && second != nullptr, "calibrate: the device refused a segment",
                  OutOfMemory);
  p.segments_fall = std::less<>{}(second, first);
  b.free_segment(second, o.copy_bytes);
  b.free_segment(first, o.copy_bytes);
}

// Bytes/s of the host optimizer's CPU update (HostAdamW's kernel on its thread pool, placed
// on the device's NUMA node): the traffic its model charges, read p, g, m, v and write p,
// m, v in fp32, then the parameter in fp32.
double host_adamw_bandwidth(int repeats, int numa_node) {
  const std::size_t n = std::size_t{1} << 22;
  std::vector<float> p(n, 0.5f), g(n, 0.01f), m(n, 0.0f), v(n, 0.0f), out(n);
  nn::cpu::ThreadPool pool(0, numa_node);
  nn::cpu::AdamWBuffers b;
  b.master = p.data();
  b.m = m.data();
  b.v = v.data();
  b.grad_f32 = g.data();
  b.out_f32 = out.data();
  std::vector<double> t;
  for (int i = 0; i < repeats; ++i) {
    const nn::cpu::AdamWScalars scalars{.t = i + 1};
    const auto start = std::chrono::steady_clock::now();
    pool.run([&](int part, int parts) {
      nn::cpu::adamw_host_update(
          b, n * static_cast<std::size_t>(part) / static_cast<std::size_t>(parts),
          n * static_cast<std::size_t>(part + 1) / static_cast<std::size_t>(parts), scalars);
    });
    t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  return 8.0 * sizeof(float) * static_cast<double>(n) / median(std::move(t));
}

std::string today() {
  const std::time_t now = std::time(nullptr);
  return fmt::format("{:%Y-%m-%d}", fmt::gmtime(now));
}

}  // namespace

DeviceProfile measure_device(Backend& b, const CalibrateOptions& o) {
  const DeviceInfo& info = b.info();
  MEMENTO_EXPECTS(info.executes_kernels && !info.virtual_clock,
                  fmt::format("calibrate measures a real device; {} is a model (accepted: host, "
                              "cuda[:N])",
                              info.name),
                  ConfigError);
  MEMENTO_EXPECTS(o.steps >= 2 && o.repeats >= 1,
                  fmt::format("calibrate: {} steps and {} repeats; accepted: steps >= 2 (the first "
                              "is start-up), repeats >= 1",
                              o.steps, o.repeats),
                  ConfigError);
  DeviceProfile p;
  p.name = info.name;
  p.description = info.name;
  p.capacity = info.capacity;
  p.source = fmt::format("measured by memento calibrate on {} ({}), workload {} batch {} seq {}",
                         info.name, today(), o.model.name, o.model.batch, o.model.seq);
  const Stream compute = Backend::default_stream();
  const double round_trip =
      timed(b, compute, 5 * o.repeats, [&] { b.launch(compute, empty_kernel()); });
  say(o, fmt::format("empty kernel round trip {:.1f} us", round_trip * 1e6));
  {
    Links links{b, o, round_trip};
    measure_links(links, p);
    measure_copies_under_kernels(links, p);
  }
  measure_allocation(b, o, p);
  say(o, fmt::format("segments: allocate {:.1f} us, free {:.1f} us; each new one {} the last",
                     p.segment_allocate_seconds * 1e6, p.segment_free_seconds * 1e6,
                     p.segments_fall ? "below" : "above"));

  const bool blocking = o.timing == KernelTiming::blocking;
  say(o, fmt::format("kernels: {} steps of {} (batch {}, seq {}), {}", o.steps, o.model.name,
                     o.model.batch, o.model.seq,
                     blocking ? "one kernel at a time (blocking)"
                              : "device time of each kernel queued as in training"));
  const TimedTraining timed = time_training(b, o.model, o.steps, o.seed, o.timing);
  p.launch_latency = timed.launch_latency;
  p.kernel_gap = timed.kernel_gap;
  p.sync_latency = std::max(0.0, round_trip - p.launch_latency);
  // A blocking launch's time includes the round trip to the device; a span is the kernel's.
  p.kernels = median_kernels(timed.kernels, blocking ? round_trip : 0.0);
  p.stated_rates = StatedRates{info.matrix_flops, info.vector_flops, info.memory_bandwidth,
                               info.h2d_bandwidth, info.d2h_bandwidth};
  // Starting points for the fit: the backend's own rates where it states them.
  p.matrix_flops = info.matrix_flops > 0 ? info.matrix_flops : 1e11;
  p.vector_flops = info.vector_flops > 0 ? info.vector_flops : 1e11;
  fit_rates(p);
  if (!info.supports_bf16) p.matrix_flops = p.vector_flops;  // no tensor cores to fit
  p.host_optimizer_bandwidth = host_adamw_bandwidth(o.repeats, info.numa_node);
  say(o, fmt::format("{} distinct kernels; fitted rates: matrix {:.2f} TFLOP/s, vector {:.2f} "
                     "TFLOP/s; launch {:.1f} us; {:.1f} us between kernels; host AdamW {:.1f} "
                     "GB/s",
                     p.kernels.size(), p.matrix_flops / 1e12, p.vector_flops / 1e12,
                     p.launch_latency * 1e6, p.kernel_gap * 1e6, p.host_optimizer_bandwidth / 1e9));
  return p;
}

}  // namespace memento::calibrate
