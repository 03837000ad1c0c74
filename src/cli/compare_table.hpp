// The table `memento compare` prints: the assumptions, one row per run, and the notes on
// what each column means.
#pragma once

#include <string>

#include "cli/compare.hpp"

namespace memento::cli {

/// "12.34 ms", "1.234 s", "0".
[[nodiscard]] std::string format_seconds(double s);
/// "yes", or "no: OOM" with the shortfall when known.
[[nodiscard]] std::string fits_text(const RunResult& r);

/// Prints the assumptions and the table of `result` to stdout.
void print_compare_report(const CompareResult& result);

}  // namespace memento::cli
