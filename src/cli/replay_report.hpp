// What `memento replay` prints and writes: the table, results.json, results.csv and the
// slowdown-vs-budget chart.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "cli/replay.hpp"

namespace memento::cli {

/// "yes", "no: OOM" or "no: thrashing".
[[nodiscard]] std::string replay_fits_text(const replay::ReplayResult& r);

/// Prints the summary and one row per run to stdout.
void print_replay_report(const ReplaySweep& sweep);

/// {"log": {...}, "assumptions": {...}, "runs": [run, ...]}: every run, the unlimited ones
/// first (policy "none", budget "unlimited", budget_ratio and budget_bytes null), each with
/// policy, budget, budget_ratio, budget_bytes, memory_model, fits, thrashed, slowdown,
/// seconds, peak_bytes, ... (null where a run has no value).
[[nodiscard]] nlohmann::ordered_json replay_results_json(const ReplaySweep& sweep);
/// One row per run of results.json, the same order; nulls are empty cells.
[[nodiscard]] std::string replay_results_csv(const ReplaySweep& sweep);
[[nodiscard]] std::string replay_slowdown_svg(const ReplaySweep& sweep);

/// Writes results.csv, slowdown.svg and results.json into `dir` (a Staging directory, which
/// exists); memento::Error when a file cannot be written.
void write_replay_report(const ReplaySweep& sweep, const std::string& dir);

}  // namespace memento::cli
