// The host AdamW's CPU step (adamw_host_update on its thread pool) over 64M parameters, fp32
// gradients in, bf16 parameters out (the seed rows' case), at 1 and all hardware threads,
// in GB/s of memory traffic: read g, p, m, v, write p, m, v (7 x 4 bytes) and the bf16
// parameter (2), 30 bytes a parameter. The bound: a loop with the same reads and writes over
// the same buffers and next to no arithmetic (BM_SameTrafficBound), on the same threads.
// BM_ScalarReference: the scalar cpu::adamw_update HostAdamW ran before, for comparison.
// Wall-clock time (UseRealTime): the pool's threads do the work.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <thread>
#include <vector>

#include "nn/kernels/cpu/adamw_host.hpp"
#include "nn/kernels/cpu/kernels_cpu.hpp"
#include "nn/kernels/cpu/thread_pool.hpp"

namespace {

using namespace memento::nn::cpu;

constexpr std::size_t kParams = std::size_t{64} << 20;
constexpr double kBytesPerParam = 30;

struct Buffers {
  std::vector<float> p, g, m, v;
  std::vector<std::uint16_t> out;
};

Buffers& buffers() {
  static Buffers b = [] {
    Buffers x;
    x.p.assign(kParams, 0.5f);
    x.g.assign(kParams, 1e-3f);
    x.m.assign(kParams, 1e-4f);
    x.v.assign(kParams, 1e-6f);
    x.out.assign(kParams, 0);
    return x;
  }();
  return b;
}

ThreadPool& pool(int threads) {
  static std::map<int, std::unique_ptr<ThreadPool>> pools;
  auto& p = pools[threads];
  if (!p) p = std::make_unique<ThreadPool>(threads);
  return *p;
}

void set_rate(benchmark::State& state) {
  state.counters["GB/s"] = benchmark::Counter(
      kBytesPerParam * static_cast<double>(kParams) * static_cast<double>(state.iterations()) / 1e9,
      benchmark::Counter::kIsRate);
}

// The same traffic as the update, with an add per array instead of AdamW's arithmetic.
void same_traffic(Buffers& b, std::size_t begin, std::size_t end) {
  float* __restrict p = b.p.data();
  float* __restrict m = b.m.data();
  float* __restrict v = b.v.data();
  const float* __restrict g = b.g.data();
  std::uint16_t* __restrict out = b.out.data();
  for (std::size_t i = begin; i < end; ++i) {
    const float gi = g[i];
    const float pi = p[i] + gi;
    m[i] = m[i] + gi;
    v[i] = v[i] + gi;
    p[i] = pi;
    out[i] = static_cast<std::uint16_t>(std::bit_cast<std::uint32_t>(pi) >> 16);
  }
}

void BM_HostAdamW(benchmark::State& state) {
  Buffers& b = buffers();
  ThreadPool& tp = pool(static_cast<int>(state.range(0)));
  const AdamWBuffers ab{.master = b.p.data(),
                        .m = b.m.data(),
                        .v = b.v.data(),
                        .grad_f32 = b.g.data(),
                        .out_bf16 = b.out.data()};
  int t = 1;
  for (auto _ : state) {
    const AdamWScalars s{1e-3f, 0.9f, 0.95f, 1e-8f, 0.0f, t++};
    tp.run([&](int part, int parts) {
      const Range r = split(kParams, part, parts);
      adamw_host_update(ab, r.begin, r.end, s);
    });
    benchmark::DoNotOptimize(b.out.data());
  }
  set_rate(state);
}

void BM_SameTrafficBound(benchmark::State& state) {
  Buffers& b = buffers();
  ThreadPool& tp = pool(static_cast<int>(state.range(0)));
  for (auto _ : state) {
    tp.run([&](int part, int parts) {
      const Range r = split(kParams, part, parts);
      same_traffic(b, r.begin, r.end);
    });
    benchmark::DoNotOptimize(b.out.data());
  }
  set_rate(state);
}

// What HostAdamW ran before: the scalar update, then the bf16 write-back, on one thread.
void BM_ScalarReference(benchmark::State& state) {
  Buffers& b = buffers();
  int t = 1;
  for (auto _ : state) {
    adamw_update(b.p.data(), b.g.data(), b.m.data(), b.v.data(), kParams, 1e-3f, 0.9f, 0.95f, 1e-8f,
                 0.0f, t++);
    f32_to_bf16(b.out.data(), b.p.data(), kParams);
    benchmark::DoNotOptimize(b.out.data());
  }
  set_rate(state);
}

void thread_counts(benchmark::internal::Benchmark* bm) {
  const int all = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  bm->Arg(1);
  if (all > 1) bm->Arg(all);
  bm->ArgName("threads")->UseRealTime()->Unit(benchmark::kMillisecond);
}

BENCHMARK(BM_SameTrafficBound)->Apply(thread_counts);
BENCHMARK(BM_HostAdamW)->Apply(thread_counts);
BENCHMARK(BM_ScalarReference)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
