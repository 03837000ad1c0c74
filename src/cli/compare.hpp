// `memento compare`: one model under several memory budgets and several strategies (static
// planners, dynamic eviction policies, or a plan with a policy for the rest), each run on a
// fresh backend, allocator and runtime, against the same model without a budget. Prints the
// assumptions and one table; with an output directory also writes results.json,
// results.csv, a Chrome trace per run and SVG charts.
#pragma once

#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "cli/environment.hpp"
#include "cli/workload.hpp"
#include "memento/error.hpp"
#include "memento/step_plan.hpp"

namespace memento::cli {

struct CompareOptions {
  WorkloadOptions workload;  // model, batch, seq, dtype, optimizer, attention
  std::string device = "host";
  /// Byte sizes (8GiB, 512MB) or percentages of the UNLIMITED PEAK (70%), not of the device.
  std::vector<std::string> budgets = {"70%", "50%"};
  /// Planner names, policy names, PLANNER+POLICY, or "all".
  /// (No bare "none": with the default --policy auto it would repeat "auto", plan none
  /// handing everything to policy auto.)
  std::vector<std::string> strategies = {"budget", "every-layer", "sqrt",    "selective",
                                         "mixed",  "recompute",   "offload", "auto"};
  std::string policy = "auto";  // what a bare planner hands the remaining pressure to
  int steps = 3;
  std::optional<std::string> out;          // directory for results.json, traces, charts
  std::optional<std::string> host_budget;  // pinned host memory for offloads (16 GiB)
  std::uint64_t seed = 1234;
  float lr = 3e-3f;
  bool print = true;  // the assumptions and the table on stdout, progress on stderr
  OptionSources sources;
};

/// A strategy as run: the plan decides at each release, the policy handles the rest.
/// `budget` is the budget-only path: no plan given, the runtime observes the first step and
/// plans from it (RuntimeOptions::plan_from_observation), with the policy for the rest.
struct Strategy {
  std::string name;  // as the user wrote it ("sqrt", "dtr", "sqrt+dtr", "budget")
  std::string plan;
  std::string policy;
  bool observe = false;
};

struct RunResult {
  Strategy strategy;
  std::string budget_text;       // as given ("70%", "12MiB"); "unlimited"
  std::size_t budget_bytes = 0;  // 0: no budget (the device capacity)
  double budget_fraction = 0;    // budget / unlimited peak
  bool fits = false;             // completed every step (the allocator enforces the budget)
  std::string error;             // the OutOfMemory message of a run that did not fit
  std::optional<std::size_t> miss_bytes;  // a lower bound on how far it missed, when known
  std::size_t peak_bytes = 0;             // max over steps of the peak reserved
  std::size_t allocator_peak_bytes = 0;   // the allocator's own reserved peak at the end
  std::optional<double> step_time_s;      // median of the steps after the first
  std::optional<double> slowdown;         // step time / unlimited step time
  std::optional<double> overhead;         // slowdown - 1
  // The last step's counters.
  double recompute_flops = 0;
  std::size_t bytes_offloaded = 0;
  std::size_t bytes_prefetched = 0;
  std::optional<double> stall_s;  // unknown on cuda
  std::optional<double> loss;     // the last step's mean loss; none on sim
  std::size_t evictions = 0;
  std::size_t recomputes = 0;
  std::string plan_description;
  std::optional<double> plan_cpu_s;          // the budget-only path: CPU time of its last plan
  std::optional<StepPlanSummary> step_plan;  // ... and that plan
  std::string trace_file;  // file name in the output directory; empty without --out
};

struct CompareResult {
  nlohmann::ordered_json assumptions;  // model shape, dtype, device, ... (results.json)
  std::vector<std::pair<std::string, std::string>> summary;  // the same, as printed
  RunResult unlimited;
  std::vector<RunResult> runs;
};

/// Every run failed to fit its budget.
class NothingFits : public Error {
 public:
  using Error::Error;
};

/// Parses a strategy list ("all", planner, policy, PLANNER+POLICY; comma-separated items are
/// split). ConfigError naming the valid planners and policies for an unknown name.
[[nodiscard]] std::vector<Strategy> parse_strategies(const std::vector<std::string>& items,
                                                     const std::string& policy);

/// Runs the comparison. Prints when options.print; writes the output directory's files only
/// once every run completed (results.json last, by rename). ConfigError for bad input;
/// NothingFits (after the table) when no run fits its budget.
CompareResult run_compare(const CompareOptions& options);

/// `memento` with no subcommand: gpt2-tiny on host, then gpt2-124m (batch 8) on sim:a100-40gb,
/// budgets 70% and 50% of the unlimited peak, the default strategies. Returns the exit code.
int run_default_compare();

}  // namespace memento::cli
