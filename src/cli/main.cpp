// The memento command-line tool. Subcommands: demo (for now the default), train.
#include <fmt/format.h>

#include <CLI/CLI.hpp>

#include "cli/demo.hpp"
#include "cli/train.hpp"
#include "memento/config.hpp"
#include "memento/error.hpp"

int main(int argc, char** argv) {
  using namespace memento;
  CLI::App app{"memento: fit a training step into a GPU memory budget"};
  app.require_subcommand(0, 1);

  cli::DemoOptions demo;
  // Defaults come from the environment (MEMENTO_DEVICE, MEMENTO_BUDGET); flags override.
  auto* demo_cmd = app.add_subcommand(
      "demo", "replay a transformer-shaped allocation trace through the caching allocator");
  demo_cmd->add_option("--device", demo.device, "host[:CAPACITY], sim:PROFILE or cuda[:N]");
  demo_cmd->add_option("--budget", demo.budget, "device budget: 8GiB, 512MB, 1.5G, bytes or 60%");
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
  train_cmd->add_option("--device", train.device, "host[:CAPACITY], sim:PROFILE or cuda[:N]");
  train_cmd->add_option("--budget", train.budget, "device budget: 8GiB, 512MB, bytes or 60%");
  train_cmd->add_option("--host-budget", train.host_budget, "pinned host memory for offloads");
  train_cmd->add_option("--policy", train.policy, "eviction policy (MEMENTO_POLICY names)");
  train_cmd->add_option("--dtype", train.dtype, "fp32 or bf16 (bf16: cuda and sim)");
  train_cmd->add_option("--steps", train.steps, "training steps")->check(CLI::Range(1, 100000));
  train_cmd->add_option("--batch", train.batch, "batch size (default: the preset's)")
      ->check(CLI::Range(1, 65536));
  train_cmd->add_option("--seq", train.seq, "sequence length (default: the preset's)")
      ->check(CLI::Range(1, 1 << 20));
  train_cmd->add_option("--lr", train.lr, "AdamW learning rate");
  train_cmd->add_option("--seed", train.seed, "seed of the weights and the data");
  train_cmd->add_flag("--summary", train.summary,
                      "end with one line: peak_reserved=BYTES step_seconds=S loss=L");

  CLI11_PARSE(app, argc, argv);
  try {
    Config config = config_from_env();
    if (*train_cmd) {
      if (config.device && train_cmd->count("--device") == 0)
        train.device = config.device->to_string();
      if (config.budget && train_cmd->count("--budget") == 0) train.budget = config.budget->text;
      if (config.policy && train_cmd->count("--policy") == 0) train.policy = *config.policy;
      if (config.host_budget && train_cmd->count("--host-budget") == 0)
        train.host_budget = std::to_string(*config.host_budget);
      return cli::run_train(train);
    }
    if (config.device && demo_cmd->count("--device") == 0) demo.device = config.device->to_string();
    if (config.budget && demo_cmd->count("--budget") == 0) demo.budget = config.budget->text;
    return cli::run_demo(demo);  // the default job until `memento compare` exists
  } catch (const memento::Error& e) {
    fmt::print(stderr, "memento: error: {}\n", e.what());
    return 1;
  }
}
