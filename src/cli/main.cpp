// The memento command-line tool. Subcommands: demo (for now the default).
#include <fmt/format.h>

#include <CLI/CLI.hpp>

#include "cli/demo.hpp"
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

  CLI11_PARSE(app, argc, argv);
  try {
    Config config = config_from_env();
    if (config.device && demo_cmd->count("--device") == 0) demo.device = config.device->to_string();
    if (config.budget && demo_cmd->count("--budget") == 0) demo.budget = config.budget->text;
    return cli::run_demo(demo);  // the default job until `memento compare` exists
  } catch (const memento::Error& e) {
    fmt::print(stderr, "memento: error: {}\n", e.what());
    return 1;
  }
}
