// Allocator microbenchmarks: the cached fast path against raw backend segments, and the
// fragmentation of a transformer-shaped allocation trace.
#include <benchmark/benchmark.h>

#include <unordered_map>

#include "memento/backends.hpp"
#include "memento/caching_allocator.hpp"
#include "workload/transformer_trace.hpp"

namespace {

using namespace memento;

// A cached allocate+free pair on the host backend (the block is reused every iteration).
void BM_CachedAllocFree(benchmark::State& state) {
  auto backend = make_host_backend({.capacity = std::size_t{1} << 30, .link_bandwidth = 0});
  CachingAllocator alloc(*backend);
  auto bytes = static_cast<std::size_t>(state.range(0));
  alloc.deallocate(alloc.allocate(bytes));  // warm the cache
  for (auto _ : state) {
    void* p = alloc.allocate(bytes);
    benchmark::DoNotOptimize(p);
    alloc.deallocate(p);
  }
  state.SetLabel("host");
}
BENCHMARK(BM_CachedAllocFree)->Arg(512)->Arg(64 << 10)->Arg(4 << 20);

// The same with N live blocks of assorted sizes around it, so the trees are not trivial.
void BM_CachedAllocFreeBusy(benchmark::State& state) {
  auto backend = make_host_backend({.capacity = std::size_t{4} << 30, .link_bandwidth = 0});
  CachingAllocator alloc(*backend);
  std::vector<void*> live;
  for (int i = 0; i < state.range(0); ++i)
    live.push_back(alloc.allocate(512u * static_cast<unsigned>(i % 64 + 1)));
  alloc.deallocate(alloc.allocate(64 << 10));
  for (auto _ : state) {
    void* p = alloc.allocate(64 << 10);
    benchmark::DoNotOptimize(p);
    alloc.deallocate(p);
  }
  for (void* p : live) alloc.deallocate(p);
}
BENCHMARK(BM_CachedAllocFreeBusy)->Arg(64)->Arg(4096);

// What every allocation would cost without the cache: a raw backend segment.
void BM_BackendSegmentAllocFree(benchmark::State& state) {
  auto backend = make_host_backend({.capacity = std::size_t{1} << 30, .link_bandwidth = 0});
  auto bytes = static_cast<std::size_t>(state.range(0));
  for (auto _ : state) {
    void* p = backend->allocate_segment(bytes);
    benchmark::DoNotOptimize(p);
    backend->free_segment(p, bytes);
  }
  state.SetLabel("host");
}
BENCHMARK(BM_BackendSegmentAllocFree)->Arg(512)->Arg(64 << 10)->Arg(4 << 20);

// Replays a GPT-2-124M-shaped training trace (batch 8, seq 1024, fp32, 3 steps) through the
// allocator on the sim backend and reports peak reserved over peak allocated.
void BM_TransformerTrace(benchmark::State& state) {
  workload::TraceShape shape;
  shape.batch = static_cast<std::size_t>(state.range(0));
  auto ops = workload::transformer_trace(shape);
  double ratio = 0;
  double peak_alloc = 0;
  double peak_reserved = 0;
  for (auto _ : state) {
    auto backend = make_sim_backend(find_device_profile("a100-80gb"));
    CachingAllocator alloc(*backend);
    std::unordered_map<std::uint32_t, void*> live;
    for (const auto& op : ops) {
      if (op.kind == workload::TraceOp::Kind::alloc) {
        live[op.id] = alloc.allocate(op.bytes);
      } else {
        alloc.deallocate(live.at(op.id));
        live.erase(op.id);
      }
    }
    AllocatorStats s = alloc.stats();
    peak_alloc = static_cast<double>(s.allocated.peak);
    peak_reserved = static_cast<double>(s.reserved.peak);
    ratio = peak_reserved / peak_alloc;
    for (auto& [id, p] : live) alloc.deallocate(p);
  }
  state.counters["peak_alloc_GiB"] = peak_alloc / (1 << 30);
  state.counters["peak_reserved_GiB"] = peak_reserved / (1 << 30);
  state.counters["reserved_over_alloc"] = ratio;
  state.counters["ops"] = static_cast<double>(ops.size());
}
BENCHMARK(BM_TransformerTrace)->Arg(1)->Arg(4)->Arg(8)->Unit(benchmark::kMillisecond);

// On a GPU: the cached pair against cudaMalloc/cudaFree. Registered only where a CUDA device
// exists (see main), so the suite runs everywhere.
void BM_CudaCachedAllocFree(benchmark::State& state) {
  auto backend = make_cuda_backend(0);
  CachingAllocator alloc(*backend);
  auto bytes = static_cast<std::size_t>(state.range(0));
  alloc.deallocate(alloc.allocate(bytes));
  for (auto _ : state) {
    void* p = alloc.allocate(bytes);
    benchmark::DoNotOptimize(p);
    alloc.deallocate(p);
  }
  state.SetLabel(backend->info().name);
}

void BM_CudaSegmentAllocFree(benchmark::State& state) {
  auto backend = make_cuda_backend(0);
  auto bytes = static_cast<std::size_t>(state.range(0));
  for (auto _ : state) {
    void* p = backend->allocate_segment(bytes);
    benchmark::DoNotOptimize(p);
    backend->free_segment(p, bytes);
  }
  state.SetLabel(backend->info().name);
}

}  // namespace

int main(int argc, char** argv) {
  if (memento::cuda_device_count() > 0) {
    benchmark::RegisterBenchmark("BM_CudaCachedAllocFree", BM_CudaCachedAllocFree)
        ->Arg(512)
        ->Arg(64 << 10)
        ->Arg(4 << 20);
    benchmark::RegisterBenchmark("BM_CudaSegmentAllocFree", BM_CudaSegmentAllocFree)
        ->Arg(512)
        ->Arg(64 << 10)
        ->Arg(4 << 20);
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
