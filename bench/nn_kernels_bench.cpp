// CPU kernel throughput: float matmul in GFLOP/s at GPT-2-tiny to GPT-2-small shapes, and the
// time of attention and layernorm forward. Wall-clock time (UseRealTime): the kernels run on
// several threads, which CPU time of the calling thread would not count.
#include <benchmark/benchmark.h>

#include <cstddef>
#include <cstdint>
#include <random>
#include <vector>

#include "nn/kernels/cpu/kernels_cpu.hpp"

namespace {

using namespace memento::nn;

std::vector<float> random_floats(std::size_t n, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

std::size_t sz(std::int64_t n) { return static_cast<std::size_t>(n); }

// Reports the work done per iteration as a rate in units of 1e9 per second.
void set_gflops(benchmark::State& state, double flops_per_iteration) {
  state.counters["GFLOPS"] =
      benchmark::Counter(flops_per_iteration * static_cast<double>(state.iterations()) / 1e9,
                         benchmark::Counter::kIsRate);
}

// out[N,OC] = inp[N,C] weight[OC,C]^T + bias: 2*N*C*OC flops.
void BM_MatmulForward(benchmark::State& state) {
  const int N = static_cast<int>(state.range(0));
  const int C = static_cast<int>(state.range(1));
  const int OC = static_cast<int>(state.range(2));
  const auto inp = random_floats(sz(N) * sz(C), 1);
  const auto weight = random_floats(sz(OC) * sz(C), 2);
  const auto bias = random_floats(sz(OC), 3);
  std::vector<float> out(sz(N) * sz(OC));
  for (auto _ : state) {
    cpu::matmul_forward(out.data(), inp.data(), weight.data(), bias.data(), N, C, OC);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  set_gflops(state, 2.0 * N * C * OC);
}
BENCHMARK(BM_MatmulForward)
    ->ArgNames({"N", "C", "OC"})
    ->Args({512, 256, 768})     // GPT-2-tiny qkv, B*T = 512
    ->Args({1024, 256, 1024})   // tiny MLP up-projection
    ->Args({2048, 768, 768})    // GPT-2-small attention projection
    ->Args({4096, 768, 3072})   // GPT-2-small MLP up-projection, B*T = 4096
    ->Args({4096, 1024, 1024})  // square-ish, wider channels
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// dinp, dweight and dbias together: 4*N*C*OC flops.
void BM_MatmulBackward(benchmark::State& state) {
  const int N = static_cast<int>(state.range(0));
  const int C = static_cast<int>(state.range(1));
  const int OC = static_cast<int>(state.range(2));
  const auto inp = random_floats(sz(N) * sz(C), 1);
  const auto weight = random_floats(sz(OC) * sz(C), 2);
  const auto dout = random_floats(sz(N) * sz(OC), 3);
  std::vector<float> dinp(inp.size()), dweight(weight.size()), dbias(sz(OC));
  for (auto _ : state) {
    cpu::matmul_backward(dinp.data(), dweight.data(), dbias.data(), dout.data(), inp.data(),
                         weight.data(), N, C, OC);
    benchmark::DoNotOptimize(dinp.data());
    benchmark::ClobberMemory();
  }
  set_gflops(state, 4.0 * N * C * OC);
}
BENCHMARK(BM_MatmulBackward)
    ->ArgNames({"N", "C", "OC"})
    ->Args({1024, 256, 1024})
    ->Args({4096, 768, 3072})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

void BM_AttentionForward(benchmark::State& state) {
  const int B = static_cast<int>(state.range(0));
  const int T = static_cast<int>(state.range(1));
  const int C = static_cast<int>(state.range(2));
  const int NH = static_cast<int>(state.range(3));
  const auto qkv = random_floats(sz(B) * sz(T) * 3 * sz(C), 4);
  std::vector<float> out(sz(B) * sz(T) * sz(C));
  std::vector<float> preatt(sz(B) * sz(NH) * sz(T) * sz(T)), att(preatt.size());
  for (auto _ : state) {
    cpu::attention_forward(out.data(), preatt.data(), att.data(), qkv.data(), B, T, C, NH);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  // The two full seq x seq products per head, as computed (half of them multiply masked zeros).
  set_gflops(state, 4.0 * B * NH * T * T * (C / NH));
}
BENCHMARK(BM_AttentionForward)
    ->ArgNames({"B", "T", "C", "NH"})
    ->Args({8, 256, 256, 4})    // GPT-2-tiny
    ->Args({4, 1024, 768, 12})  // GPT-2-small
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

void BM_LayernormForward(benchmark::State& state) {
  const int N = static_cast<int>(state.range(0));
  const int C = static_cast<int>(state.range(1));
  const auto inp = random_floats(sz(N) * sz(C), 5);
  const auto weight = random_floats(sz(C), 6);
  const auto bias = random_floats(sz(C), 7);
  std::vector<float> out(inp.size()), mean(sz(N)), rstd(sz(N));
  for (auto _ : state) {
    cpu::layernorm_forward(out.data(), mean.data(), rstd.data(), inp.data(), weight.data(),
                           bias.data(), N, C);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) * 2 * N * C *
                          static_cast<std::int64_t>(sizeof(float)));
}
BENCHMARK(BM_LayernormForward)
    ->ArgNames({"N", "C"})
    ->Args({2048, 256})
    ->Args({4096, 768})
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
