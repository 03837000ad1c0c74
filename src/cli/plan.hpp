// `memento plan`: for a model on a device under one budget, the strategy that fits with the
// least overhead (predicted by running it, on the sim backend for sim devices), or a plain
// statement that nothing fits and the smallest budget that would.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "cli/environment.hpp"
#include "cli/workload.hpp"

namespace memento::cli {

struct PlanOptions {
  WorkloadOptions workload{.model = "gpt2-124m"};
  std::string device = "sim:a100-40gb";
  std::string budget = "8GiB";             // bytes, or a percentage of the unlimited peak
  std::string policy = "auto";             // what a bare planner hands the remaining pressure to
  std::optional<std::string> host_budget;  // pinned host memory for offloads (16 GiB)
  int steps = 3;
  std::uint64_t seed = 1234;
  OptionSources sources;
};

/// Prints the recommendation; returns the exit code (0: something fits, 3: nothing does).
int run_plan(const PlanOptions& options);

}  // namespace memento::cli
