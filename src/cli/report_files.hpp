// The files `memento compare --out DIR` writes besides the runtime's Chrome traces:
// results.json, results.csv, memory-<strategy>.svg (device memory over the last step, read
// back from each run's trace) and overhead.svg (overhead against budget per strategy).
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "cli/compare.hpp"

namespace memento::cli {

/// A name made safe for a file name: letters, digits, '.', '+', '-' stay, '%' becomes "pct",
/// anything else '_'.
[[nodiscard]] std::string file_slug(const std::string& name);

/// One sample of the runtime's "device memory" counter.
struct MemorySample {
  double seconds = 0;  // since the start of the step
  double allocated = 0;
  double reserved = 0;
};

/// The device memory samples of the last completed step ("step N" span) in a Chrome trace
/// the runtime wrote, the last one repeated at the end of the step. Empty when the trace has
/// no completed step or no sample in it. memento::Error when the file cannot be read or parsed.
[[nodiscard]] std::vector<MemorySample> read_last_step_memory(const std::string& trace_path);

/// `v`'s value as JSON, or null when it is unset.
template <typename T>
[[nodiscard]] nlohmann::ordered_json or_null(const std::optional<T>& v) {
  return v ? nlohmann::ordered_json(*v) : nlohmann::ordered_json(nullptr);
}

/// Writes `text` to `path` (replacing it); memento::Error when it cannot be written.
void write_file(const std::string& path, const std::string& text);

/// CSV of JSON objects: a header line of `fields`, then each row's values of those fields
/// (null: empty; strings quoted when they need it; numbers as JSON writes them).
[[nodiscard]] std::string csv_table(const std::vector<nlohmann::ordered_json>& rows,
                                    const std::vector<std::string>& fields);

[[nodiscard]] nlohmann::ordered_json run_json(const RunResult& run);
[[nodiscard]] nlohmann::ordered_json results_json(const CompareResult& result);
[[nodiscard]] std::string results_csv(const CompareResult& result);

/// Writes results.csv, the SVG charts and, last, results.json into `dir`, where the runs'
/// traces already are. memento::Error when a file cannot be written.
void write_report(const CompareResult& result, const std::string& dir);

}  // namespace memento::cli
