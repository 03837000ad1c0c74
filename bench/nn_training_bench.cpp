// A gpt2-tiny training step on the host backend (real CPU kernels), unlimited and under
// half its peak with the recompute and auto policies: what eviction costs in wall time.
#include <benchmark/benchmark.h>

#include <memory>
#include <string>

#include "memento/backends.hpp"
#include "memento/pinned_host_pool.hpp"
#include "memento/runtime.hpp"
#include "nn/models/gpt2.hpp"
#include "nn/train.hpp"

namespace memento {
namespace {

constexpr std::size_t kMiB = std::size_t{1} << 20;

struct Rig {
  std::unique_ptr<Backend> backend = make_host_backend({.capacity = 1024 * kMiB});
  CachingAllocator alloc;
  PinnedHostPool pool;
  Runtime rt;
  nn::Tape tape;
  std::unique_ptr<nn::Model> model;
  nn::Trainer trainer;
  Rig(std::size_t budget, const std::string& policy)
      : alloc(*backend, {.budget = budget}),
        pool(*backend, 256 * kMiB),
        rt(*backend, alloc, &pool, make_policy(policy)),
        tape(rt, alloc, *backend),
        model(nn::make_gpt2(nn::gpt2_preset("gpt2-tiny"), tape, 1)),
        trainer(tape, *model) {}
};

std::size_t unlimited_peak() {
  static const std::size_t peak = [] {
    Rig r(0, "lru");
    (void)r.trainer.step();
    return r.trainer.step().stats.peak_reserved;
  }();
  return peak;
}

void BM_Gpt2TinyStep(benchmark::State& state, const std::string& policy, int percent) {
  const std::size_t budget = percent >= 100 ? 0 : unlimited_peak() * percent / 100;
  Rig r(budget, policy);
  (void)r.trainer.step();  // warm-up: caches, learnt order
  nn::StepReport last;
  for (auto _ : state) last = r.trainer.step();
  state.counters["loss"] = last.loss;
  state.counters["peak_MiB"] = static_cast<double>(last.stats.peak_reserved) / kMiB;
  state.counters["evictions"] =
      static_cast<double>(last.stats.counters.discards + last.stats.counters.offloads);
  state.counters["recomputes"] = static_cast<double>(last.stats.counters.recomputes);
}

BENCHMARK_CAPTURE(BM_Gpt2TinyStep, unlimited, std::string("lru"), 100)
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Gpt2TinyStep, recompute_50pct, std::string("recompute"), 50)
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Gpt2TinyStep, auto_50pct, std::string("auto"), 50)
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Gpt2TinyStep, offload_50pct, std::string("offload"), 50)
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace memento

BENCHMARK_MAIN();
