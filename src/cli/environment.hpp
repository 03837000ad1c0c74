// The environment's defaults for the subcommands' options, applied the same way in every
// subcommand: a flag wins; else MEMENTO_DEVICE, MEMENTO_POLICY, MEMENTO_HOST_BUDGET (and
// MEMENTO_BUDGET for train and demo, whose percentages are of device memory); else the
// subcommand's own default. compare, plan and replay take budgets from --budget only: their
// percentages are of the unlimited peak. Each option remembers where its value came from so
// that an error names the flag or variable the user actually set.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "memento/config.hpp"

namespace CLI {
class App;
}

namespace memento::cli {

/// Where a subcommand's device, budget, policy and host budget came from: the flag, or the
/// variable (or MEMENTO_CONF item) whose value it took.
struct OptionSources {
  std::string device = "--device";
  std::string budget = "--budget";
  std::string policy = "--policy";
  std::string host_budget = "--host-budget";
};

/// The options of one subcommand that the environment may fill; null: it has no such option.
struct EnvTargets {
  std::string* device = nullptr;
  std::optional<std::string>* budget = nullptr;  ///< train and demo only
  std::string* policy = nullptr;
  std::vector<std::string>* policies = nullptr;  ///< replay's --policies
  std::optional<std::string>* host_budget = nullptr;
};

/// Fills each target whose flag `cmd` was not given from `config`, and records in `sources`
/// where every value came from.
void apply_env_defaults(const CLI::App& cmd, const Config& config, const EnvTargets& targets,
                        OptionSources& sources);

}  // namespace memento::cli
