#include "cli/environment.hpp"

#include <CLI/CLI.hpp>

#include "memento/bytes.hpp"

namespace memento::cli {

void apply_env_defaults(const CLI::App& cmd, const Config& config, const EnvTargets& t,
                        OptionSources& sources) {
  const auto unset = [&](const char* flag) { return cmd.count(flag) == 0; };
  if (t.device && config.device && unset("--device")) {
    *t.device = config.device->to_string();
    sources.device = config.sources.device;
  }
  if (t.budget && config.budget && unset("--budget")) {
    *t.budget = config.budget->text;
    sources.budget = config.budget->source;
  }
  if (t.policy && config.policy && unset("--policy")) {
    *t.policy = *config.policy;
    sources.policy = config.sources.policy;
  }
  if (t.policies && config.policy && unset("--policies")) {
    *t.policies = {*config.policy};
    sources.policy = config.sources.policy;
  }
  if (t.host_budget && config.host_budget && unset("--host-budget")) {
    *t.host_budget = exact_bytes_text(*config.host_budget);
    sources.host_budget = config.sources.host_budget;
  }
}

}  // namespace memento::cli
