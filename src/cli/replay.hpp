// `memento replay LOG`: a recorded DTR-style operator log run through the runtime on the
// sim backend, first without a budget, then for each policy x budget x memory model.
// Prints one table; with --out writes results.json, results.csv and slowdown.svg, only
// once every run completed (through cli::Staging).
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "cli/environment.hpp"
#include "replay/replayer.hpp"

namespace CLI {
class App;
}

namespace memento::cli {

struct ReplayCliOptions {
  std::string log;
  /// Fractions of the counted model's unlimited peak (0.5, 50%) or byte sizes (8GiB).
  std::vector<std::string> budgets = {"0.9", "0.7", "0.5", "0.3", "0.2"};
  std::vector<std::string> policies = {"all"};
  std::optional<double> link_gbps;         ///< host link, GB/s each way; default: the profile's
  std::string memory_model = "both";       ///< allocator, counted or both
  std::string device = "sim:a100-40gb";    ///< sim:PROFILE
  std::optional<std::string> host_budget;  ///< pinned host memory for offloads (64 GiB)
  std::optional<std::string> out;
  bool print = true;  ///< the summary and table on stdout, progress on stderr
  OptionSources sources;
};

/// One replay of the sweep.
struct ReplayRun {
  std::string policy;            ///< run with; an unlimited run evicts nothing whatever it is
  std::string budget_text;       ///< as given; "unlimited"
  double budget_ratio = 0;       ///< budget / the counted model's unlimited peak; unlimited: 0
  std::size_t budget_bytes = 0;  ///< 0: unlimited
  replay::MemoryModel model = replay::MemoryModel::counted;
  replay::ReplayResult result;
};

struct ReplaySweep {
  replay::ReplayLog log;
  std::vector<std::pair<std::string, std::string>> summary;  ///< printed before the table
  std::string device;                                        ///< sim:PROFILE
  double link_bytes_per_s = 0;                               ///< each way
  std::size_t host_budget = 0;
  /// What budget fractions are of: the counted model's unlimited peak.
  std::size_t reference_peak = 0;
  std::vector<ReplayRun> unlimited;  ///< per memory model, counted (the reference) first
  std::vector<ReplayRun> runs;
};

/// Registers `memento replay` and its options (filled into `options`) on `app`.
CLI::App* add_replay_command(CLI::App& app, ReplayCliOptions& options);

/// Runs the sweep. ConfigError for bad options or a bad log, or when the log does not fit
/// the device even without a budget; runs that do not fit or thrash are results.
ReplaySweep run_replay_sweep(const ReplayCliOptions& options);

/// The subcommand: runs the sweep; returns the exit code (errors propagate as exceptions).
int run_replay_command(const ReplayCliOptions& options);

}  // namespace memento::cli
