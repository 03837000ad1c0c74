#include "calibrate/sim_runs.hpp"

#include <algorithm>
#include <memory>
#include <vector>

#include "calibrate/kernel_table.hpp"
#include "memento/backends.hpp"
#include "memento/caching_allocator.hpp"
#include "memento/pinned_host_pool.hpp"
#include "memento/policy.hpp"
#include "memento/runtime.hpp"
#include "nn/tape.hpp"
#include "nn/train.hpp"
#include "policies/plan/plan.hpp"

namespace memento::calibrate {

SimRun sim_run(const DeviceProfile& profile, const nn::Gpt2Config& model, const SimRunOptions& o) {
  const std::size_t budget = o.budget;
  DeviceProfile unbounded = profile;
  unbounded.capacity = std::max(profile.capacity, std::size_t{1} << 50);
  auto backend = make_sim_backend(unbounded);
  CachingAllocator alloc(*backend, AllocatorOptions{budget});
  PinnedHostPool pool(*backend, std::size_t{16} << 30);
  RuntimeOptions runtime_options;
  if (o.uniform_rates)
    runtime_options.matrix_flops = runtime_options.vector_flops = runtime_options.memory_bandwidth =
        1e12;
  Runtime rt(*backend, alloc, &pool, make_policy(o.policy), runtime_options);
  nn::Tape tape(rt, alloc, *backend);
  auto gpt = nn::make_gpt2(model, tape, 1234);
  plan::ChainShape shape = gpt->chain_shape();
  // The fp32 gradients, m and v, and with bf16 weights the fp32 master copy.
  const double per_parameter = model.dtype == nn::DType::bf16 ? 16.0 : 12.0;
  shape.fixed_bytes += per_parameter * static_cast<double>(gpt->parameter_count());
  DeviceInfo info = backend->info();
  if (o.uniform_rates) info.matrix_flops = info.vector_flops = info.memory_bandwidth = 1e12;
  const std::unique_ptr<plan::Plan> p =
      plan::make_plan(o.plan, shape,
                      {.budget_bytes = static_cast<double>(budget),
                       .matrix_flops = info.matrix_flops,
                       .vector_flops = info.vector_flops,
                       .memory_bandwidth = info.memory_bandwidth,
                       .link_bytes_per_s = std::min(info.h2d_bandwidth, info.d2h_bandwidth),
                       .host_bytes = 16.0 * (1 << 30)});
  tape.set_plan(p.get());
  SimRun run;
  std::vector<double> seconds;
  {
    nn::Trainer trainer(tape, *gpt, nn::AdamWOptions{});
    for (int i = 0; i < o.steps; ++i) {
      const nn::StepReport r = trainer.step();
      if (i > 0 || o.steps == 1) seconds.push_back(r.stats.seconds);
      run.peak_reserved = std::max(run.peak_reserved, r.stats.peak_reserved);
      run.recompute_flops = r.stats.counters.recompute_flops;
      run.recomputes = r.stats.counters.recomputes;
    }
  }
  tape.set_plan(nullptr);
  run.step_seconds = median(std::move(seconds));
  return run;
}

}  // namespace memento::calibrate
