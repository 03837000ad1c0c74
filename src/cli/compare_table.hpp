// The table `memento compare` prints: the assumptions, one row per run, and the notes on
// what each column means.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "cli/compare.hpp"

namespace memento::cli {

/// "12.34 ms", "1.234 s", "0".
[[nodiscard]] std::string format_seconds(double s);
/// "yes", or "no: OOM" with the shortfall when known.
[[nodiscard]] std::string fits_text(const RunResult& r);

/// Prints `rows` (the first is the header) as aligned columns on stdout: the columns in
/// `left` left-aligned (text), the others right-aligned (numbers).
void print_table(const std::vector<std::vector<std::string>>& rows,
                 const std::vector<std::size_t>& left);

/// Prints the assumptions and the table of `result` to stdout.
void print_compare_report(const CompareResult& result);

}  // namespace memento::cli
