// The memento command-line tool. Subcommands: compare (the default: with no subcommand, a
// default comparison), train, demo.
#include <fmt/format.h>

#include <CLI/CLI.hpp>

#include "cli/calibrate_cmd.hpp"
#include "cli/compare.hpp"
#include "cli/demo.hpp"
#include "cli/environment.hpp"
#include "cli/plan.hpp"
#include "cli/replay.hpp"
#include "cli/train.hpp"
#include "cli/workload.hpp"
#include "common/log.hpp"
#include "memento/config.hpp"
#include "memento/error.hpp"

int main(int argc, char** argv) {
  using namespace memento;
  CLI::App app{"memento: fit a training step into a GPU memory budget"};
  app.require_subcommand(0, 1);
  app.footer(
      "With no subcommand, memento runs the default comparison: gpt2-tiny on host, then "
      "gpt2-124m (batch 8) on sim:a100-40gb, budgets 70% and 50% of the unlimited peak, "
      "strategies none, every-layer, sqrt, selective, recompute, offload, auto.");

  cli::DemoOptions demo;
  // Flags win over the environment (cli/environment.hpp), which wins over the defaults.
  auto* demo_cmd = app.add_subcommand(
      "demo", "replay a transformer-shaped allocation trace through the caching allocator");
  demo_cmd->add_option("--device", demo.device,
                       "host[:CAPACITY], sim:PROFILE or cuda[:N] (default: MEMENTO_DEVICE, "
                       "else host:1GiB)");
  demo_cmd->add_option("--budget", demo.budget,
                       "device budget: 8GiB, 512MB, 1.5G, bytes, or 60% of device memory "
                       "(default: MEMENTO_BUDGET, else none)");
  demo_cmd->add_option("--steps", demo.steps, "training steps to replay")
      ->check(CLI::Range(1, 1000));
  demo_cmd->add_option("--layers", demo.layers, "transformer layers")->check(CLI::Range(1, 512));
  demo_cmd->add_option("--batch", demo.batch, "batch size")->check(CLI::Range(1, 4096));
  demo_cmd->add_option("--seq", demo.seq, "sequence length")->check(CLI::Range(1, 1 << 20));
  demo_cmd->add_option("--hidden", demo.hidden, "hidden width")->check(CLI::Range(64, 65536));

  cli::TrainOptions train;
  auto* train_cmd = app.add_subcommand(
      "train", "train a model for a few steps under a budget and an eviction policy");
  train_cmd->add_option("--model", train.model,
                        "gpt2-tiny, gpt2-124m, gpt2-355m, gpt2-774m, "
                        "gpt2-1.5b, gpt-j-6b or mlp");
  train_cmd->add_option("--device", train.device,
                        "host[:CAPACITY], sim:PROFILE or cuda[:N] (default: MEMENTO_DEVICE, "
                        "else host:4GiB)");
  train_cmd->add_option("--budget", train.budget,
                        "device budget: 8GiB, 512MB, bytes, or 60% of device memory (default: "
                        "MEMENTO_BUDGET, else none)");
  train_cmd->add_option("--host-budget", train.host_budget,
                        "pinned host memory for offloads (default: MEMENTO_HOST_BUDGET, else "
                        "16GiB)");
  train_cmd->add_option("--policy", train.policy,
                        "eviction policy: lru, largest, recompute, offload, dtr, capuchin or "
                        "auto (default: MEMENTO_POLICY, else auto)");
  train_cmd->add_option("--plan", train.plan,
                        "observe (default: observe the first step under the policy, then plan "
                        "keep / offload / recompute per tensor for the budget and apply it from "
                        "the second) or none (the policy alone)");
  train_cmd->add_option("--dtype", train.dtype,
                        "fp32 (default), bf16 (cuda and sim) or auto (bf16 on sim and cuda when "
                        "--optimizer auto moves AdamW to the host)");
  train_cmd->add_option("--optimizer", train.optimizer,
                        "where AdamW's state and step live: device (default), host (ZeRO-Offload "
                        "style: fp32 master weights, m, v and the update on the CPU, gradients "
                        "streamed off the device) or auto (host when device-side training "
                        "cannot fit the budget)");
  train_cmd->add_flag("--link-bf16", train.link_bf16,
                      "with AdamW on the host: gradients cross the link in bf16 (changes the "
                      "numerics: the update sees rounded gradients)");
  train_cmd
      ->add_option("--host-update-bandwidth", train.host_update_gbps,
                   "with AdamW on the host, on sim: the CPU step's memory traffic rate in "
                   "GB/s (default: a measured profile's, else 40)")
      ->check(CLI::PositiveNumber);
  train_cmd->add_option("--attention", train.attention,
                        "GPT-2's attention: eager (the scores are an activation) or fused (one "
                        "op, the scores are scratch)");
  train_cmd->add_option("--steps", train.steps, "training steps")->check(CLI::Range(1, 100000));
  train_cmd->add_option("--batch", train.batch, "batch size (default: the preset's)")
      ->check(CLI::Range(1, 65536));
  train_cmd->add_option("--seq", train.seq, "sequence length (default: the preset's)")
      ->check(CLI::Range(1, 1 << 20));
  train_cmd->add_option("--lr", train.lr, "AdamW learning rate");
  train_cmd->add_option("--seed", train.seed, "seed of the weights and the data");
  train_cmd->add_flag("--summary", train.summary,
                      "end with one line: peak_reserved=BYTES step_seconds=S loss=L");
  train_cmd->add_option("--record-trace", train.record_trace,
                        "write the first step as an operator log (JSON Lines) to this file");
  train_cmd->add_option("--record-profile", train.record_profile,
                        "device profile of the log's roofline TIMEs (default: the sim's own, "
                        "else a100-40gb)");

  cli::CompareOptions compare;
  auto* compare_cmd = app.add_subcommand(
      "compare",
      "run a model under several budgets with several strategies (static plans, eviction "
      "policies) and compare peak memory and step time against the unlimited run");
  cli::add_workload_options(*compare_cmd, compare.workload);
  compare_cmd->add_option("--device", compare.device,
                          "host[:CAPACITY], sim:PROFILE or cuda[:N] (default: MEMENTO_DEVICE, "
                          "else host)");
  compare_cmd
      ->add_option("--budget", compare.budgets,
                   "budgets, comma-separated or repeated: byte sizes (8GiB, 512MB) or "
                   "percentages; here a bare percentage is of the UNLIMITED PEAK (the peak of "
                   "the same model run without a budget), 60%device one of device memory "
                   "(default: 70%,50%; from this flag only: MEMENTO_BUDGET is not used)")
      ->delimiter(',');
  compare_cmd
      ->add_option("--strategies", compare.strategies,
                   "comma-separated: budget (the budget-only path: observe the first step, "
                   "then plan), planners (none, every-layer, sqrt, nested, selective, "
                   "offload-blocks, optimal, mixed), policies (lru, largest, recompute, "
                   "offload, dtr, capuchin, auto), PLANNER+POLICY, or all (default: budget, "
                   "every-layer, sqrt, selective, mixed, recompute, offload, auto)")
      ->delimiter(',');
  compare_cmd->add_option(
      "--policy", compare.policy,
      "the policy a bare planner hands the remaining pressure to (default: MEMENTO_POLICY, "
      "else auto)");
  compare_cmd->add_option("--steps", compare.steps, "training steps per run (default: 3)")
      ->check(CLI::Range(1, 1000));
  compare_cmd->add_option("--out", compare.out,
                          "directory for results.json, results.csv, Chrome traces and SVG "
                          "charts (created if missing; written only when every run completed)");
  compare_cmd->add_option("--host-budget", compare.host_budget,
                          "pinned host memory for offloads (default: MEMENTO_HOST_BUDGET, else "
                          "16GiB)");
  compare_cmd->add_option("--seed", compare.seed, "seed of the weights and the data");

  cli::PlanOptions plan;
  auto* plan_cmd = app.add_subcommand(
      "plan",
      "the strategy that fits a budget with the least overhead, or the smallest budget "
      "that fits");
  cli::add_workload_options(*plan_cmd, plan.workload);
  plan_cmd->add_option("--device", plan.device,
                       "sim:PROFILE (a prediction), host or cuda[:N] (default: MEMENTO_DEVICE, "
                       "else sim:a100-40gb)");
  plan_cmd->add_option("--budget", plan.budget,
                       "one budget: bytes (8GiB), a percentage of the unlimited peak (60%), or "
                       "of device memory (60%device) (default: 8GiB; from this flag only: "
                       "MEMENTO_BUDGET is not used)");
  plan_cmd->add_option("--policy", plan.policy,
                       "the policy a bare planner hands the remaining pressure to (default: "
                       "MEMENTO_POLICY, else auto)");
  plan_cmd->add_option("--host-budget", plan.host_budget,
                       "pinned host memory for offloads (default: MEMENTO_HOST_BUDGET, else "
                       "16GiB)");
  plan_cmd->add_option("--steps", plan.steps, "training steps per run")->check(CLI::Range(2, 100));

  cli::ReplayCliOptions replay;
  CLI::App* replay_cmd = cli::add_replay_command(app, replay);

  cli::CalibrateCliOptions calibrate;
  CLI::App* calibrate_cmd = cli::add_calibrate_command(app, calibrate);

  CLI11_PARSE(app, argc, argv);
  try {
    log::set_level(log::level_from_env());  // first: it decides how errors below are shown
    const Config config = config_from_env();
    using cli::apply_env_defaults;
    if (*train_cmd) {
      apply_env_defaults(*train_cmd, config,
                         {.device = &train.device,
                          .budget = &train.budget,
                          .policy = &train.policy,
                          .host_budget = &train.host_budget},
                         train.sources);
      train.trace_file = config.trace_file.value_or("");
      return cli::run_train(train);
    }
    if (*compare_cmd) {
      apply_env_defaults(*compare_cmd, config,
                         {.device = &compare.device,
                          .policy = &compare.policy,
                          .host_budget = &compare.host_budget},
                         compare.sources);
      cli::run_compare(compare);
      return 0;
    }
    if (*plan_cmd) {
      apply_env_defaults(
          *plan_cmd, config,
          {.device = &plan.device, .policy = &plan.policy, .host_budget = &plan.host_budget},
          plan.sources);
      return cli::run_plan(plan);
    }
    if (*replay_cmd) {
      apply_env_defaults(*replay_cmd, config,
                         {.device = &replay.device,
                          .policies = &replay.policies,
                          .host_budget = &replay.host_budget},
                         replay.sources);
      return cli::run_replay_command(replay);
    }
    if (*calibrate_cmd) return cli::run_calibrate_command(calibrate);
    if (*demo_cmd) {
      apply_env_defaults(*demo_cmd, config, {.device = &demo.device, .budget = &demo.budget},
                         demo.sources);
      return cli::run_demo(demo);
    }
    return cli::run_default_compare();  // the main job: no subcommand
  } catch (const std::exception& e) {   // memento's, or e.g. a filesystem error writing files
    // The message alone; with MEMENTO_LOG_LEVEL=debug also where memento raised it.
    log::error(e);
    return 1;
  }
}
