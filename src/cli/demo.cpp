#include "cli/demo.hpp"

#include <fmt/format.h>

#include <cstring>
#include <unordered_map>

#include "memento/backends.hpp"
#include "memento/caching_allocator.hpp"
#include "memento/config.hpp"
#include "memento/error.hpp"
#include "workload/transformer_trace.hpp"

namespace memento::cli {

int run_demo(const DemoOptions& o) {
  DeviceSpec spec = parse_device(o.device, o.sources.device);
  auto backend = make_backend(spec);
  AllocatorOptions options;
  std::optional<BudgetSpec> budget;
  if (o.budget) {
    budget = parse_budget(*o.budget, o.sources.budget);
    options.budget = budget->resolve(backend->info().capacity);
  }
  CachingAllocator alloc(*backend, options);

  workload::TraceShape shape{.layers = o.layers,
                             .batch = o.batch,
                             .seq = o.seq,
                             .hidden = o.hidden,
                             .heads = std::max<std::size_t>(1, o.hidden / 64),
                             .vocab = 8192,
                             .dtype_bytes = 4,
                             .steps = o.steps};
  auto ops = workload::transformer_trace(shape);
  fmt::print("memento allocator demo on {} ({} capacity), budget {}{}\n", backend->info().name,
             format_bytes(backend->info().capacity), format_bytes(alloc.budget()),
             budget ? fmt::format(" ({} from {})", budget->describe(), budget->source) : "");
  fmt::print(
      "trace: {} training steps of a {}-layer transformer (batch {}, seq {}, hidden {}), "
      "{} allocator calls\n",
      shape.steps, shape.layers, shape.batch, shape.seq, shape.hidden, ops.size());

  // Touching memory needs device memory the host can write; elsewhere (sim, cuda) the demo
  // replays the allocator calls alone.
  const bool real_memory = backend->info().host_addressable_memory;
  std::unordered_map<std::uint32_t, void*> live;
  double start = backend->now();
  std::size_t done = 0;
  for (const auto& op : ops) {
    if (op.kind == workload::TraceOp::Kind::alloc) {
      void* p = nullptr;
      try {
        p = alloc.allocate(op.bytes);
      } catch (const OutOfMemory& e) {
        for (auto& [id, q] : live) alloc.deallocate(q);
        fmt::print(stderr, "\n");
        fmt::print(
            "\nthe trace does not fit the budget: {}\n(the allocator alone cannot evict "
            "activations; eviction comes with the runtime)\n",
            e.what());
        return 2;
      }
      // Touch the memory the way a kernel writing the activation would.
      if (real_memory) std::memset(p, 0, op.bytes);
      live[op.id] = p;
    } else {
      alloc.deallocate(live.at(op.id));
      live.erase(op.id);
    }
    if (++done % (ops.size() / 10 + 1) == 0)
      fmt::print(stderr, "\r  replaying {:3d}%", static_cast<int>(100 * done / ops.size()));
  }
  fmt::print(stderr, "\r  replaying 100%\n");
  double seconds = backend->now() - start;
  for (auto& [id, p] : live) alloc.deallocate(p);

  AllocatorStats s = alloc.stats();
  fmt::print("\n{}", format_stats_table(s));
  fmt::print(
      "\npeak reserved / peak allocated: {:.3f}   cache hit rate: {:.1f}%   "
      "replay time: {:.3f} s{}\n",
      static_cast<double>(s.reserved.peak) / static_cast<double>(s.allocated.peak),
      100.0 * static_cast<double>(s.cache_hits) / static_cast<double>(s.allocations), seconds,
      backend->info().virtual_clock ? " (virtual clock: this demo runs no kernels)" : "");
  return 0;
}

}  // namespace memento::cli
