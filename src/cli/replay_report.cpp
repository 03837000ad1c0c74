#include "cli/replay_report.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <map>
#include <vector>

#include "cli/compare_table.hpp"
#include "cli/report_files.hpp"
#include "cli/report_svg.hpp"
#include "memento/config.hpp"

namespace memento::cli {
namespace {

using Json = nlohmann::ordered_json;

// An unlimited run (no budget: nothing evicted, whatever policy it ran with) is policy
// "none", budget "unlimited", budget_ratio and budget_bytes null.
Json replay_run_json(const ReplayRun& run) {
  const replay::ReplayResult& r = run.result;
  const bool unlimited = run.budget_bytes == 0;
  return Json{{"policy", unlimited ? std::string("none") : run.policy},
              {"budget", unlimited ? std::string("unlimited") : run.budget_text},
              {"budget_ratio", unlimited ? Json(nullptr) : Json(run.budget_ratio)},
              {"budget_bytes", unlimited ? Json(nullptr) : Json(run.budget_bytes)},
              {"memory_model", replay::to_string(run.model)},
              {"fits", r.fits},
              {"thrashed", r.thrashed},
              {"slowdown", or_null(r.slowdown)},
              {"seconds", r.fits ? Json(r.seconds) : Json(nullptr)},
              {"peak_bytes", r.peak_bytes},
              {"peak_allocated_bytes", r.peak_allocated},
              {"evictions", r.evictions},
              {"recomputes", r.recomputes},
              {"recompute_s", r.recompute_seconds},
              {"bytes_offloaded", r.bytes_offloaded},
              {"stall_s", or_null(r.stall_s)},
              {"instructions_done", r.instructions_done},
              {"error", r.error.empty() ? Json(nullptr) : Json(r.error)}};
}

std::string budget_cell(const ReplayRun& run) {
  if (run.budget_bytes == 0) return "none";
  return fmt::format("{} ({:.0f}%)", format_bytes(run.budget_bytes), run.budget_ratio * 100);
}

}  // namespace

std::string replay_fits_text(const replay::ReplayResult& r) {
  if (r.fits) return "yes";
  return r.thrashed ? "no: thrashing" : "no: OOM";
}

void print_replay_report(const ReplaySweep& sweep) {
  fmt::print("memento replay\n");
  for (const auto& [key, value] : sweep.summary) fmt::print("  {:<10} {}\n", key, value);
  fmt::print("\n");
  std::vector<std::vector<std::string>> rows{{"policy", "memory", "budget", "fits", "slowdown",
                                              "peak", "evictions", "recomputes", "recompute",
                                              "offloaded", "stalled"}};
  const auto row = [&](const std::string& policy, const ReplayRun& run) {
    const replay::ReplayResult& r = run.result;
    rows.push_back({policy, replay::to_string(run.model), budget_cell(run), replay_fits_text(r),
                    r.slowdown ? fmt::format("{:.3f}", *r.slowdown) : "-",
                    format_bytes(r.peak_bytes), std::to_string(r.evictions),
                    std::to_string(r.recomputes), format_seconds(r.recompute_seconds),
                    format_bytes(r.bytes_offloaded), r.stall_s ? format_seconds(*r.stall_s) : "-"});
  };
  for (const ReplayRun& u : sweep.unlimited) row("unlimited", u);
  for (const ReplayRun& run : sweep.runs) row(run.policy, run);
  print_table(rows, {0, 1, 2, 3});
  fmt::print(
      "\nbudget: bytes (% of the counted model's unlimited peak); slowdown: replayed time / "
      "recorded "
      "time; peak: reserved device bytes;\nrecompute: time spent recomputing; stalled: compute "
      "waiting on copies; a run stopped for thrashing or out of memory shows what it did up "
      "to then\n");
  std::fflush(stdout);
}

Json replay_results_json(const ReplaySweep& sweep) {
  const replay::ReplayLog& log = sweep.log;
  Json runs = Json::array();
  for (const ReplayRun& u : sweep.unlimited) runs.push_back(replay_run_json(u));
  for (const ReplayRun& r : sweep.runs) runs.push_back(replay_run_json(r));
  return Json{{"log",
               {{"source", log.source},
                {"lines", log.lines},
                {"operators", log.ops.size()},
                {"tensors", log.tensors.size()},
                {"constant_bytes", log.constant_bytes},
                {"peak_live_bytes", log.peak_live_bytes},
                {"recorded_seconds", log.total_seconds}}},
              {"assumptions",
               {{"device", sweep.device},
                {"link_bytes_per_s", sweep.link_bytes_per_s},
                {"host_budget_bytes", sweep.host_budget},
                {"budget_ratio_of", "the counted model's unlimited peak"},
                {"reference_peak_bytes", sweep.reference_peak},
                {"slowdown", "replayed time / recorded time"},
                {"thrash_rule", "recompute time > 2x recorded time: stopped"}}},
              {"runs", std::move(runs)}};
}

std::string replay_results_csv(const ReplaySweep& sweep) {
  static const std::vector<std::string> kFields{
      "policy",      "memory_model",    "budget_ratio", "budget_bytes", "fits",
      "thrashed",    "slowdown",        "peak_bytes",   "evictions",    "recomputes",
      "recompute_s", "bytes_offloaded", "stall_s",      "error"};
  std::vector<Json> rows;
  for (const ReplayRun& u : sweep.unlimited) rows.push_back(replay_run_json(u));
  for (const ReplayRun& r : sweep.runs) rows.push_back(replay_run_json(r));
  return csv_table(rows, kFields);
}

std::string replay_slowdown_svg(const ReplaySweep& sweep) {
  SvgChart chart;
  chart.title = fmt::format("{}: slowdown against the memory budget (dashed: allocator model)",
                            std::filesystem::path(sweep.log.source).filename().string());
  chart.x_label = "budget (% of the counted model's unlimited peak)";
  chart.y_label = "slowdown (replayed / recorded time)";
  chart.x_unit = AxisUnit::percent;
  chart.y_from_zero = false;
  // One colour per policy; counted solid, allocator dashed.
  std::vector<std::string> policies;
  std::map<std::pair<std::string, replay::MemoryModel>, std::vector<std::pair<double, double>>>
      points;
  for (const ReplayRun& r : sweep.runs) {
    if (std::find(policies.begin(), policies.end(), r.policy) == policies.end())
      policies.push_back(r.policy);
    auto& p = points[{r.policy, r.model}];
    if (r.result.slowdown) p.emplace_back(r.budget_ratio * 100, *r.result.slowdown);
  }
  for (auto& [key, p] : points) {
    std::sort(p.begin(), p.end());
    const int color =
        static_cast<int>(std::find(policies.begin(), policies.end(), key.first) - policies.begin());
    const bool dashed = key.second == replay::MemoryModel::allocator;
    const std::string label = fmt::format("{} ({}){}", key.first, replay::to_string(key.second),
                                          p.empty() ? ": no fit" : "");
    chart.series.push_back(SvgSeries{label, p, false, dashed, color % 10});
  }
  return render_svg(chart);
}

void write_replay_report(const ReplaySweep& sweep, const std::string& dir) {
  write_file(dir + "/results.csv", replay_results_csv(sweep));
  write_file(dir + "/slowdown.svg", replay_slowdown_svg(sweep));
  write_file(dir + "/results.json", replay_results_json(sweep).dump(2) + "\n");
}

}  // namespace memento::cli
