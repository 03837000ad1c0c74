#include "cli/replay.hpp"

#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <cmath>

#include "cli/compare_table.hpp"
#include "cli/progress.hpp"
#include "cli/replay_report.hpp"
#include "cli/staging.hpp"
#include "common/text.hpp"
#include "memento/config.hpp"
#include "memento/device_profile.hpp"
#include "memento/error.hpp"
#include "memento/policy.hpp"

namespace memento::cli {
namespace {

using replay::MemoryModel;

// A budget as given, and its bytes once the unlimited peak it may be a share of is known.
struct Budget {
  BudgetSpec spec;
  std::size_t bytes = 0;
};

// "0.5 (50% of the unlimited peak) = 12.0 MiB, 8GiB = 8.00 GiB": what each budget is.
std::string describe_budgets(const std::vector<Budget>& budgets) {
  std::string out;
  for (const Budget& b : budgets) {
    if (!out.empty()) out += ", ";
    out += b.spec.is_share() && b.spec.describe() != b.spec.text
               ? fmt::format("{} ({}) = {}", b.spec.text, b.spec.describe(), format_bytes(b.bytes))
               : fmt::format("{} = {}", b.spec.text, format_bytes(b.bytes));
  }
  return out;
}

std::vector<MemoryModel> parse_models(const std::string& text) {
  if (text == "counted") return {MemoryModel::counted};
  if (text == "allocator") return {MemoryModel::allocator};
  if (text == "both") return {MemoryModel::counted, MemoryModel::allocator};
  MEMENTO_FAIL(ConfigError, fmt::format("--memory-model=\"{}\" is not accepted; accepted: "
                                        "allocator, counted, both",
                                        text));
}

std::vector<std::string> parse_policies(const std::vector<std::string>& items,
                                        const std::string& source) {
  std::vector<std::string> out;
  for (const std::string& item : items) {
    const std::vector<std::string> add =
        item == "all" ? policy_names() : std::vector<std::string>{parse_policy(item, source)};
    for (const std::string& p : add)
      if (std::find(out.begin(), out.end(), p) == out.end()) out.push_back(p);
  }
  MEMENTO_EXPECTS(!out.empty(), "--policies: no policy given", ConfigError);
  return out;
}

DeviceProfile parse_profile(const ReplayCliOptions& o) {
  const DeviceSpec spec = parse_device(o.device, o.sources.device);
  MEMENTO_EXPECTS(spec.kind == BackendKind::sim,
                  fmt::format("{} is not accepted: replay runs on the simulator; accepted: "
                              "sim:PROFILE",
                              text::setting(o.sources.device, o.device)),
                  ConfigError);
  DeviceProfile p = find_device_profile(spec.profile);
  if (o.link_gbps) {
    MEMENTO_EXPECTS(
        std::isfinite(*o.link_gbps) && *o.link_gbps > 0,
        fmt::format("--link-gbps={} is not accepted: GB/s must be positive", *o.link_gbps),
        ConfigError);
    p.h2d_bandwidth = p.d2h_bandwidth = *o.link_gbps * 1e9;
  }
  return p;
}

std::string describe(const ReplayRun& run) {
  return fmt::format("{} ({}) @ {}", run.policy, replay::to_string(run.model), run.budget_text);
}

}  // namespace

CLI::App* add_replay_command(CLI::App& app, ReplayCliOptions& o) {
  CLI::App* cmd = app.add_subcommand(
      "replay",
      "replay a DTR-style operator log (JSON Lines) through the runtime on the simulator, "
      "with each policy under each budget");
  cmd->add_option("log", o.log, "the operator log (JSON Lines)")->required();
  cmd->add_option("--budget", o.budgets,
                  "budgets, comma-separated: fractions of the unlimited peak of live bytes (0.5 or "
                  "50%), of device memory (50%device), or byte sizes (default: "
                  "0.9,0.7,0.5,0.3,0.2; from this flag only: MEMENTO_BUDGET is not used)")
      ->delimiter(',');
  cmd->add_option("--policies", o.policies,
                  "comma-separated policies (lru, largest, recompute, offload, dtr, capuchin, "
                  "auto) or all (default: MEMENTO_POLICY, else all)")
      ->delimiter(',');
  cmd->add_option("--link-gbps", o.link_gbps,
                  "host link GB/s each way for offloads (default: the profile's)");
  cmd->add_option("--memory-model", o.memory_model,
                  "allocator (memento's caching allocator: fragmentation counts), counted (live "
                  "tensor bytes only) or both (default)");
  cmd->add_option("--device", o.device,
                  "sim:PROFILE (default: MEMENTO_DEVICE, else sim:a100-40gb)");
  cmd->add_option("--host-budget", o.host_budget,
                  "pinned host memory for offloads (default: MEMENTO_HOST_BUDGET, else 64GiB)");
  cmd->add_option("--out", o.out,
                  "directory for results.json, results.csv and slowdown.svg (written only when "
                  "every run completed)");
  return cmd;
}

ReplaySweep run_replay_sweep(const ReplayCliOptions& o) {
  // Every option is checked, and the log read, before the first run.
  const DeviceProfile profile = parse_profile(o);
  const std::vector<MemoryModel> models = parse_models(o.memory_model);
  const std::vector<std::string> policies =
      parse_policies(o.policies, o.sources.policy == "--policy" ? "--policies" : o.sources.policy);
  std::vector<Budget> budgets;
  for (const std::string& text : o.budgets)
    budgets.push_back({parse_budget(text, o.sources.budget,
                                    {.bare_percent = BudgetBase::peak, .fractions = true})});
  MEMENTO_EXPECTS(!budgets.empty(), "--budget: no budget given", ConfigError);
  ReplaySweep sweep;
  sweep.host_budget =
      o.host_budget ? parse_bytes(*o.host_budget, o.sources.host_budget) : std::size_t{64} << 30;
  std::optional<Staging> staging;
  if (o.out) staging.emplace(*o.out);
  sweep.log = replay::load_replay_log(o.log);
  const replay::ReplayLog& log = sweep.log;
  MEMENTO_EXPECTS(log.peak_live_bytes > 0,
                  fmt::format("{}: the log allocates no memory; nothing to replay", o.log),
                  ConfigError);
  sweep.device = "sim:" + profile.name;
  sweep.link_bytes_per_s = profile.h2d_bandwidth;
  // Bytes and shares of device memory are checked now, shares of the peak once it is known.
  for (Budget& b : budgets)
    if (b.spec.base == BudgetBase::device || !b.spec.is_share())
      b.bytes = b.spec.resolve(profile.capacity);

  replay::ReplayOptions base;
  base.profile = profile;
  base.host_budget = sweep.host_budget;
  std::optional<Progress> progress;
  const bool counted =
      std::find(models.begin(), models.end(), MemoryModel::counted) != models.end();
  if (o.print)
    progress.emplace((counted ? 0 : 1) + models.size() * (1 + policies.size() * budgets.size()));
  const auto run = [&](ReplayRun r) {
    if (progress) progress->begin(describe(r));
    replay::ReplayOptions ro = base;
    ro.policy = r.policy;
    ro.budget = r.budget_bytes;
    ro.memory_model = r.model;
    r.result = replay::run_replay(log, ro);
    if (progress) {
      // No slowdown when the log's recorded time is 0.
      const std::string slowdown =
          r.result.slowdown ? fmt::format("{:.3f}", *r.result.slowdown) : std::string("-");
      progress->end(r.result.fits ? fmt::format("slowdown {}, peak {}", slowdown,
                                                format_bytes(r.result.peak_bytes))
                                  : replay_fits_text(r.result));
    }
    return r;
  };
  const auto unlimited = [&](MemoryModel model) {
    // No budget, so nothing is evicted whatever the policy.
    ReplayRun u = run({"lru", "unlimited", 0, 0, model, {}});
    MEMENTO_EXPECTS(u.result.fits,
                    fmt::format("{} does not fit {} even without a budget ({} model): {}", o.log,
                                sweep.device, replay::to_string(model), u.result.error),
                    ConfigError);
    sweep.unlimited.push_back(std::move(u));
  };
  // The reference for fractions: the counted model's unlimited peak (the log's own peak of
  // live bytes, unless a constant released without being overwritten had to outlive its
  // release because a live recipe still reads it).
  unlimited(MemoryModel::counted);
  sweep.reference_peak = sweep.unlimited.front().result.peak_bytes;
  const auto ratio_of = [&](std::size_t bytes) {
    return static_cast<double>(bytes) / static_cast<double>(sweep.reference_peak);
  };
  for (Budget& b : budgets)
    if (b.bytes == 0) b.bytes = b.spec.resolve(profile.capacity, sweep.reference_peak);
  for (MemoryModel model : models) {
    if (model != MemoryModel::counted) unlimited(model);
    for (const std::string& policy : policies)
      for (const Budget& b : budgets)
        sweep.runs.push_back(run({policy, b.spec.text, ratio_of(b.bytes), b.bytes, model, {}}));
  }
  if (progress) progress->finish();

  sweep.summary = {
      {"log", fmt::format("{}: {} lines, {} operators, {} tensors ({} constants, {}), {}", o.log,
                          log.lines, log.ops.size(), log.tensors.size(),
                          std::count_if(log.tensors.begin(), log.tensors.end(),
                                        [](const replay::LogTensor& t) { return t.constant; }),
                          format_bytes(log.constant_bytes),
                          log.has_backward ? "with a backward pass" : "no BACKWARD marker")},
      {"baseline",
       fmt::format("{} of recorded operator time; peak of live bytes {}",
                   format_seconds(log.total_seconds), format_bytes(log.peak_live_bytes))},
      {"device", fmt::format("{} (capacity {}), host link {:.1f} GB/s each way, {} of pinned "
                             "host memory; times are the simulator's, from the recorded TIMEs",
                             sweep.device, format_bytes(profile.capacity),
                             sweep.link_bytes_per_s / 1e9, format_bytes(sweep.host_budget))},
      {"budgets", fmt::format("{}; the unlimited peak is the counted model's ({}), the same "
                              "bytes in both memory models",
                              describe_budgets(budgets), format_bytes(sweep.reference_peak))},
      {"rules",
       "slowdown = replayed time / recorded time; a run whose recompute time exceeds "
       "2x the recorded time is stopped as thrashing"}};
  if (o.print) print_replay_report(sweep);
  if (staging) {
    write_replay_report(sweep, staging->dir());
    staging->commit();
    if (o.print) fmt::print("wrote results.json, results.csv and slowdown.svg to {}\n", *o.out);
  }
  return sweep;
}

int run_replay_command(const ReplayCliOptions& options) {
  (void)run_replay_sweep(options);
  return 0;
}

}  // namespace memento::cli
