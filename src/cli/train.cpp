#include "cli/train.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <optional>
#include <system_error>
#include <vector>

#include "cli/workload.hpp"
#include "memento/backends.hpp"
#include "memento/config.hpp"
#include "memento/device_profile.hpp"
#include "memento/error.hpp"
#include "memento/pinned_host_pool.hpp"
#include "memento/runtime.hpp"
#include "nn/models/gpt2.hpp"
#include "nn/models/mlp.hpp"
#include "nn/plan_candidates.hpp"
#include "nn/trace_recorder.hpp"
#include "nn/train.hpp"

namespace memento::cli {
namespace {

// The recorder of --record-trace: TIMEs on --record-profile, else the sim's own profile,
// else a100-40gb (host and cuda: the roofline of a reference GPU, not a measurement).
std::optional<nn::TraceRecorder> make_recorder(const TrainOptions& o, const DeviceSpec& spec) {
  if (!o.record_trace) return std::nullopt;
  const std::string profile = o.record_profile                ? *o.record_profile
                              : spec.kind == BackendKind::sim ? spec.profile
                                                              : std::string("a100-40gb");
  const std::filesystem::path file(*o.record_trace);
  if (file.has_parent_path()) {
    std::error_code ec;
    std::filesystem::create_directories(file.parent_path(), ec);
    MEMENTO_EXPECTS(!ec,
                    fmt::format("--record-trace=\"{}\": cannot create the directory \"{}\": {}",
                                *o.record_trace, file.parent_path().string(), ec.message()),
                    ConfigError);
  }
  return nn::TraceRecorder(find_device_profile(profile));
}

}  // namespace

int run_train(const TrainOptions& o) {
  DeviceSpec spec = parse_device(o.device, o.sources.device);
  auto backend = make_backend(spec);
  const std::size_t capacity = backend->info().capacity;
  AllocatorOptions aopt;
  std::optional<BudgetSpec> budget;
  if (o.budget) {
    budget = parse_budget(*o.budget, o.sources.budget);
    aopt.budget = budget->resolve(capacity);
  }
  CachingAllocator alloc(*backend, aopt);
  const std::size_t host_budget =
      o.host_budget ? parse_bytes(*o.host_budget, o.sources.host_budget) : std::size_t{16} << 30;
  PinnedHostPool pool(*backend, host_budget);
  const std::string policy = parse_policy(o.policy, o.sources.policy);
  MEMENTO_EXPECTS(o.plan == "observe" || o.plan == "none",
                  fmt::format("--plan=\"{}\" is not accepted; accepted: observe, none", o.plan),
                  ConfigError);
  const bool observe = o.plan == "observe";
  Runtime rt(*backend, alloc, &pool, make_policy(policy),
             {.trace_file = o.trace_file, .plan_from_observation = observe});
  nn::Tape tape(rt, alloc, *backend);
  const ModelSpec spec_of_model = parse_model({.model = o.model,
                                               .batch = o.batch,
                                               .seq = o.seq,
                                               .dtype = o.dtype,
                                               .optimizer = o.optimizer,
                                               .attention = o.attention,
                                               .link_bf16 = o.link_bf16,
                                               .host_update_gbps = o.host_update_gbps},
                                              spec, alloc.budget());
  std::unique_ptr<nn::Model> model = build_model(spec_of_model, tape, o.seed);
  const std::size_t parameters = model->parameter_count();
  if (observe) {
    // The static planners' plans for this model are among the planner's starting points.
    plan::ChainShape shape = model->chain_shape();
    shape.fixed_bytes += trainer_bytes(spec_of_model, parameters);  // grads, m, v, ...
    const DeviceInfo& info = backend->info();
    rt.set_plan_candidates(nn::plan_candidates(
        shape, {.budget_bytes = static_cast<double>(alloc.budget()),
                .matrix_flops = info.matrix_flops,
                .vector_flops = info.vector_flops,
                .memory_bandwidth = info.memory_bandwidth,
                .link_bytes_per_s = std::min(info.h2d_bandwidth, info.d2h_bandwidth),
                .host_bytes = static_cast<double>(host_budget)}));
  }
  fmt::print("memento train: {} ({:.1f}M parameters, {}) on {}, budget {}{}, policy {}{}\n",
             model->name(), static_cast<double>(parameters) / 1e6,
             spec_of_model.dtype() == nn::DType::bf16 ? "bf16" : "fp32", backend->info().name,
             format_bytes(alloc.budget()),
             budget ? fmt::format(" ({} from {})", budget->describe(), budget->source) : "", policy,
             observe ? ", planned from the first step" : "");
  fmt::print("rates: {}\n", describe_rates(backend->info()));
  fmt::print("optimizer: {}{}\n", describe_optimizer(spec_of_model, parameters),
             spec_of_model.optimizer_reason.empty() ? "" : "; " + spec_of_model.optimizer_reason);
  fmt::print("{:>5} {:>8} {:>12} {:>12} {:>9} {:>9} {:>10} {:>10} {:>9}\n", "step", "loss",
             "peak alloc", "peak rsrvd", "evicted", "recomp", "step s", "wall s", "phase");
  nn::Trainer trainer(tape, *model, spec_of_model.adamw(o.lr));
  std::optional<nn::TraceRecorder> recorder = make_recorder(o, spec);
  std::vector<double> seconds;
  std::size_t peak = 0;
  double loss = 0;
  for (int i = 0; i < o.steps; ++i) {
    if (recorder && i == 0) tape.set_recorder(&*recorder);
    nn::StepReport r = trainer.step();
    if (recorder && i == 0) {
      tape.set_recorder(nullptr);
      recorder->write(*o.record_trace);
    }
    if (i > 0 || o.steps == 1) seconds.push_back(r.stats.seconds);
    peak = std::max(peak, r.stats.peak_reserved);
    loss = r.loss;
    const auto& c = r.stats.counters;
    fmt::print("{:>5} {:>8} {:>12} {:>12} {:>9} {:>9} {:>10.4f} {:>10.3f} {:>9}\n", i,
               std::isnan(r.loss) ? std::string("-") : fmt::format("{:.4f}", r.loss),
               format_bytes(r.stats.peak_allocated), format_bytes(r.stats.peak_reserved),
               c.discards + c.offloads, c.recomputes, r.stats.seconds, r.wall_seconds,
               to_string(r.stats.phase));
    if (r.stats.replanned)
      fmt::print("      plan for step {} on: {} (planned in {:.1f} ms of CPU)\n", i + 1,
                 r.stats.plan->describe(), r.stats.plan->plan_cpu_seconds * 1e3);
    if (recorder && i == 0) {
      fmt::print(
          "recorded step 0 to {}: {} operator-log lines, peak {}, {:.3f} ms of kernels{}\n",
          *o.record_trace, recorder->lines(), format_bytes(recorder->peak_bytes()),
          static_cast<double>(recorder->total_nanoseconds()) / 1e6,
          c.discards + c.offloads > 0 ? " (the log is the program: it has no evictions)" : "");
    }
    std::fflush(stdout);
  }
  if (!backend->info().executes_kernels)
    fmt::print("(sim: step times are the model's prediction; no data is computed, so no loss)\n");
  if (o.summary) {
    // The median step time after the first (which teaches the prefetcher), the highest
    // peak, the last loss: one line for scripts (scripts/gpu-check.sh).
    std::sort(seconds.begin(), seconds.end());
    fmt::print("summary: peak_reserved={} step_seconds={:.6f} loss={:.6f}\n", peak,
               seconds[seconds.size() / 2], loss);
  }
  return 0;
}

}  // namespace memento::cli
