// Every eviction policy side by side on the sim backend (a100-40gb): a 24-layer chain whose
// 256 MiB activations are all kept for a backward pass (which frees each after its use),
// under a budget of half the unlimited peak. With hide:1 a layer computes long enough to
// hide one activation's copy over PCIe, so offloading can in principle be free; with hide:0
// a copy takes three layers. The reported time is the virtual time of the last of kSteps
// steps (the first ones teach the prefetcher, the early offload and auto), so Google
// Benchmark's "Time" column is the simulated step time, not the host time. first_step is
// the first step's slowdown.
#include <benchmark/benchmark.h>

#include <memory>
#include <string>
#include <vector>

#include "memento/backends.hpp"
#include "memento/caching_allocator.hpp"
#include "memento/pinned_host_pool.hpp"
#include "memento/runtime.hpp"
#include "workload/chain_step.hpp"

namespace memento {
namespace {

constexpr std::size_t kBytes = std::size_t{256} << 20;
constexpr int kLayers = 24;
constexpr int kSteps = 5;  // the policies that learn have settled by then

/// A layer as the sim sees it: `flops` of FP32 work plus reading its inputs. 2.3e11 FLOPs
/// take ~12 ms on an A100, a little more than one 256 MiB copy over PCIe 4 (~11 ms).
class LayerOp final : public Op {
 public:
  explicit LayerOp(double flops) : flops_(flops) {}
  std::string name() const override { return "layer"; }
  KernelCost cost(std::span<const std::size_t> in, std::size_t out) const override {
    double bytes = static_cast<double>(out);
    for (std::size_t b : in) bytes += static_cast<double>(b);
    return {flops_, bytes, false};
  }
  Kernel make_kernel(std::span<const Storage> in, Storage out, const RngState&) const override {
    std::vector<std::size_t> sizes;
    for (const Storage& s : in) sizes.push_back(s.bytes);
    return Kernel{"layer", cost(sizes, out.bytes), [] {}, [](void*) {}};
  }

 private:
  double flops_;
};

StepStats chain_step(Runtime& rt, double flops) {
  return workload::chain_step(rt, std::make_shared<LayerOp>(flops), kLayers, kBytes);
}

struct Run {
  StepStats first;
  StepStats last;
};

Run run(const std::string& policy, std::size_t budget, double flops) {
  auto backend = make_sim_backend(find_device_profile("a100-40gb"));
  CachingAllocator alloc(*backend, {.budget = budget});
  PinnedHostPool pool(*backend, std::size_t{64} << 30);
  Runtime rt(*backend, alloc, &pool, make_policy(policy));
  Run r;
  r.first = chain_step(rt, flops);
  for (int step = 1; step < kSteps; ++step) r.last = chain_step(rt, flops);
  return r;
}

/// The layer's FLOPs for benchmark argument `hide`: 1 = a layer hides one copy; 0 = the
/// copy takes three layers' time.
double layer_flops(std::int64_t hide) { return hide != 0 ? 2.3e11 : 0.77e11; }

void BM_SimChainPolicy(benchmark::State& state, const std::string& policy) {
  const double flops = layer_flops(state.range(0));
  const StepStats base = run("lru", 0, flops).last;
  const std::size_t budget = base.peak_reserved / 2;
  Run r;
  for (auto _ : state) {
    r = run(policy, budget, flops);
    state.SetIterationTime(r.last.seconds);
  }
  const StepStats& s = r.last;
  state.counters["slowdown"] = s.seconds / base.seconds;
  state.counters["first_step"] = r.first.seconds / base.seconds;
  state.counters["peak/budget"] =
      static_cast<double>(s.peak_reserved) / static_cast<double>(budget);
  state.counters["offloads"] = static_cast<double>(s.counters.offloads);
  state.counters["early"] = static_cast<double>(s.counters.early_offloads);
  state.counters["discards"] = static_cast<double>(s.counters.discards);
  state.counters["recomputes"] = static_cast<double>(s.counters.recomputes);
  state.counters["stall_ms"] = 1e3 * s.stalled_seconds.value_or(0);
}

void BM_SimChainUnlimited(benchmark::State& state) {
  StepStats s;
  for (auto _ : state) {
    s = run("lru", 0, layer_flops(state.range(0))).last;
    state.SetIterationTime(s.seconds);
  }
  state.counters["peak_GiB"] = static_cast<double>(s.peak_reserved) / static_cast<double>(1 << 30);
}

BENCHMARK(BM_SimChainUnlimited)
    ->ArgName("hide")
    ->Arg(1)
    ->Arg(0)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond)
    ->Iterations(1);
const bool registered = [] {
  for (const std::string& p : policy_names())
    benchmark::RegisterBenchmark(("BM_SimChainPolicy/" + p).c_str(), BM_SimChainPolicy, p)
        ->ArgName("hide")
        ->Arg(1)
        ->Arg(0)
        ->UseManualTime()
        ->Unit(benchmark::kMillisecond)
        ->Iterations(1);
  return true;
}();

}  // namespace
}  // namespace memento

BENCHMARK_MAIN();
