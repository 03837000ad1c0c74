#include "cli/compare_table.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <string>
#include <vector>

#include "memento/config.hpp"

namespace memento::cli {
namespace {

bool contains(const std::vector<std::size_t>& items, std::size_t i) {
  return std::find(items.begin(), items.end(), i) != items.end();
}

std::string format_flops(double f) {
  if (f <= 0) return "0";
  constexpr std::array<const char*, 6> kUnits{"", "K", "M", "G", "T", "P"};
  std::size_t i = 0;
  while (f >= 1000 && i + 1 < kUnits.size()) f /= 1000, ++i;
  return fmt::format("{:.3g} {}FLOP", f, kUnits[i]);
}

}  // namespace

void print_table(const std::vector<std::vector<std::string>>& rows,
                 const std::vector<std::size_t>& left) {
  std::vector<std::size_t> width(rows.front().size(), 0);
  for (const auto& row : rows)
    for (std::size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], row[i].size());
  for (const auto& row : rows) {
    std::string line;
    for (std::size_t i = 0; i < row.size(); ++i) {
      if (i > 0) line += "  ";
      line += contains(left, i) ? fmt::format("{:<{}}", row[i], width[i])
                                : fmt::format("{:>{}}", row[i], width[i]);
    }
    line.erase(line.find_last_not_of(' ') + 1);
    fmt::print("{}\n", line);
  }
}

std::string format_seconds(double s) {
  if (s == 0) return "0";
  if (s < 1e-3) return fmt::format("{:.1f} us", s * 1e6);
  if (s < 1) return fmt::format("{:.2f} ms", s * 1e3);
  return fmt::format("{:.3f} s", s);
}

std::string fits_text(const RunResult& r) {
  if (r.fits) return "yes";
  if (r.miss_bytes) return fmt::format("no: OOM, misses by >= {}", format_bytes(*r.miss_bytes));
  return "no: OOM";
}

void print_compare_report(const CompareResult& result) {
  fmt::print("memento compare\n");
  for (const auto& [key, value] : result.summary) fmt::print("  {:<12} {}\n", key, value);
  fmt::print("\n");
  const RunResult& u = result.unlimited;
  std::vector<std::vector<std::string>> rows{{"strategy", "budget", "peak", "fits", "step",
                                              "overhead", "recompute", "offloaded", "prefetched",
                                              "stalled", "loss"}};
  bool loss_differs = false;
  const auto row = [&](const RunResult& r, const std::string& budget) {
    std::string loss = r.loss ? fmt::format("{:.6f}", *r.loss) : "-";
    if (r.loss && u.loss && *r.loss != *u.loss) {
      loss += " *";
      loss_differs = true;
    }
    rows.push_back({r.strategy.name, budget, format_bytes(r.peak_bytes), fits_text(r),
                    r.step_time_s ? format_seconds(*r.step_time_s) : "-",
                    r.overhead ? fmt::format("{:+.1f}%", *r.overhead * 100) : "-",
                    r.fits ? format_flops(r.recompute_flops) : "-",
                    r.fits ? format_bytes(r.bytes_offloaded) : "-",
                    r.fits ? format_bytes(r.bytes_prefetched) : "-",
                    r.stall_s ? format_seconds(*r.stall_s) : "-", loss});
  };
  row(u, "none");
  for (const RunResult& r : result.runs)
    row(r, fmt::format("{} ({:.0f}%)", format_bytes(r.budget_bytes), r.budget_fraction * 100));
  print_table(rows, {0, 1, 3});
  // The budget-only path's plans: what they do and what planning cost.
  bool planned = false;
  for (const RunResult& r : result.runs)
    if (r.plan_cpu_s) {
      if (!planned) fmt::print("\n");
      planned = true;
      fmt::print("{} at {}: observed step 1, then {} (planned in {:.1f} ms of CPU)\n",
                 r.strategy.name, format_bytes(r.budget_bytes), r.plan_description,
                 *r.plan_cpu_s * 1e3);
    }
  fmt::print(
      "\nbudget: bytes (% of the unlimited peak); peak: max over steps of the reserved bytes;\n"
      "step: median backend-clock time of the steps after the first; recompute ... stalled: the "
      "last step's\n");
  if (result.assumptions.value("clock", "") == "wall")
    fmt::print(
        "(wall-clock step times of a small model on a shared machine vary by tens of % "
        "from run to run)\n");
  if (loss_differs) fmt::print("* differs from the unlimited run's loss\n");
  std::fflush(stdout);
}

}  // namespace memento::cli
