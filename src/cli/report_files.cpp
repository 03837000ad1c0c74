#include "cli/report_files.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>
#include <sstream>

#include "cli/report_svg.hpp"
#include "memento/config.hpp"
#include "memento/error.hpp"

namespace memento::cli {
namespace {

using Json = nlohmann::ordered_json;

std::string csv_field(const Json& v) {
  if (v.is_null()) return "";
  if (v.is_string()) {
    const std::string s = v.get<std::string>();
    if (s.find_first_of(",\"\n") == std::string::npos) return s;
    std::string quoted = "\"";
    for (char c : s) quoted += c == '"' ? std::string("\"\"") : std::string(1, c);
    return quoted + "\"";
  }
  return v.dump();
}

SvgChart memory_chart(const std::string& strategy, const CompareResult& result,
                      const std::string& dir) {
  // The x axis is the samples' order, not their time: the runtime stamps them when the host
  // issues the work, and the host runs ahead of the device (sim, cuda) or of its stream
  // threads (host), so in time nearly all of them fall in the step's first moments.
  SvgChart chart;
  chart.title =
      fmt::format("{}: device memory allocated in the last step (dashed: budget)", strategy);
  chart.x_label = "memory samples of the step, in issue order";
  chart.y_label = "device memory";
  chart.y_unit = AxisUnit::bytes;
  const auto curve = [&](const RunResult& run, std::string label, int color) {
    SvgSeries s{std::move(label), {}, true, false, color};
    for (const MemorySample& m : read_last_step_memory(dir + "/" + run.trace_file))
      s.points.emplace_back(static_cast<double>(s.points.size()), m.allocated);
    return s;
  };
  chart.series.push_back(curve(result.unlimited, "unlimited", 7));
  int color = 0;
  for (const RunResult& run : result.runs) {
    if (run.strategy.name != strategy) continue;
    const std::string budget =
        fmt::format("{:.0f}% ({})", run.budget_fraction * 100, format_bytes(run.budget_bytes));
    if (run.fits) {
      SvgSeries s = curve(run, budget, color);
      const double end = s.points.empty() ? 0 : s.points.back().first;
      chart.series.push_back(std::move(s));
      const double b = static_cast<double>(run.budget_bytes);
      chart.series.push_back(SvgSeries{"", {{0, b}, {end, b}}, false, true, color});
    } else {
      chart.series.push_back(SvgSeries{budget + ": OOM", {}, false, true, color});
    }
    color = color == 6 ? 8 : color + 1;  // 7, grey, is the unlimited run's
  }
  return chart;
}

SvgChart overhead_chart(const CompareResult& result) {
  SvgChart chart;
  chart.title = "step-time overhead against the memory budget";
  chart.x_label = "budget (% of the unlimited peak)";
  chart.y_label = "overhead vs unlimited (%)";
  chart.x_unit = AxisUnit::percent;
  chart.y_unit = AxisUnit::percent;
  std::vector<std::string> order;
  std::map<std::string, std::vector<std::pair<double, double>>> points;
  for (const RunResult& run : result.runs) {
    if (!points.count(run.strategy.name)) order.push_back(run.strategy.name);
    auto& p = points[run.strategy.name];
    if (run.fits && run.overhead) p.emplace_back(run.budget_fraction * 100, *run.overhead * 100);
  }
  for (const std::string& name : order) {
    auto& p = points[name];
    std::sort(p.begin(), p.end());
    chart.series.push_back(SvgSeries{p.empty() ? name + " (no fit)" : name, p});
  }
  return chart;
}

}  // namespace

void write_file(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << text;
  f.close();
  MEMENTO_EXPECTS(!f.fail(), fmt::format("cannot write {}", path), Error);
}

std::string csv_table(const std::vector<Json>& rows, const std::vector<std::string>& fields) {
  // Appends in place: GCC 12's -Wrestrict misfires on `("" or ",") + string` at -O3.
  std::string out;
  const auto row = [&](auto&& field) {
    for (std::size_t i = 0; i < fields.size(); ++i) {
      if (i > 0) out += ',';
      out += field(fields[i]);
    }
    out += '\n';
  };
  row([](const std::string& f) { return f; });
  for (const Json& j : rows) row([&](const std::string& f) { return csv_field(j.at(f)); });
  return out;
}

std::string file_slug(const std::string& name) {
  std::string out;
  for (char c : name) {
    if (std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '+' || c == '-') {
      out += c;
    } else if (c == '%') {
      out += "pct";
    } else {
      out += '_';
    }
  }
  return out;
}

std::vector<MemorySample> read_last_step_memory(const std::string& trace_path) {
  std::ifstream f(trace_path);
  MEMENTO_EXPECTS(f.good(), fmt::format("cannot read the trace {}", trace_path), Error);
  nlohmann::json trace;
  try {
    trace = nlohmann::json::parse(f);
  } catch (const nlohmann::json::exception& e) {
    MEMENTO_FAIL(Error, fmt::format("cannot parse the trace {}: {}", trace_path, e.what()));
  }
  // The last "step N" span bounds the window (times in microseconds).
  double start = -1, end = -1;
  for (const auto& e : trace.at("traceEvents"))
    if (e.value("ph", "") == "X" && e.value("cat", "") == "step" &&
        e.at("ts").get<double>() >= start) {
      start = e.at("ts").get<double>();
      end = start + e.at("dur").get<double>();
    }
  if (start < 0) return {};
  // The counter's series come as separate events ("allocated", "reserved") at one time: a
  // sample holds both. Samples before the step are left out (the trace samples memory at the
  // runtime's computes, evictions and copies, not at the backward's frees, so the last one
  // before the step can be stale).
  std::vector<MemorySample> out;
  for (const auto& e : trace.at("traceEvents")) {
    if (e.value("ph", "") != "C" || e.value("name", "") != "device memory") continue;
    const double ts = e.at("ts").get<double>();
    if (ts < start) continue;
    if (ts > end) break;  // sorted by time
    const double t = (ts - start) / 1e6;
    if (out.empty() || out.back().seconds != t)
      out.push_back(out.empty() ? MemorySample{} : out.back());
    out.back().seconds = t;
    const auto& args = e.at("args");
    if (args.contains("allocated")) out.back().allocated = args["allocated"].get<double>();
    if (args.contains("reserved")) out.back().reserved = args["reserved"].get<double>();
  }
  if (out.empty()) return out;
  out.push_back(out.back());  // hold the last value to the end of the step
  out.back().seconds = (end - start) / 1e6;
  return out;
}

Json run_json(const RunResult& r) {
  return Json{{"strategy", r.strategy.name},
              {"plan", r.strategy.plan},
              {"policy", r.strategy.policy},
              {"plan_description", r.plan_description},
              {"plan_cpu_s", or_null(r.plan_cpu_s)},
              {"budget", r.budget_text},
              {"budget_bytes", r.budget_bytes},
              {"budget_fraction", r.budget_fraction},
              {"peak_bytes", r.peak_bytes},
              {"fits", r.fits},
              {"miss_bytes", or_null(r.miss_bytes)},
              {"step_time_s", or_null(r.step_time_s)},
              {"slowdown", or_null(r.slowdown)},
              {"overhead", or_null(r.overhead)},
              {"recompute_flops", r.recompute_flops},
              {"bytes_offloaded", r.bytes_offloaded},
              {"bytes_prefetched", r.bytes_prefetched},
              {"stall_s", or_null(r.stall_s)},
              {"loss", or_null(r.loss)},
              {"evictions", r.evictions},
              {"recomputes", r.recomputes},
              {"trace", r.trace_file.empty() ? Json(nullptr) : Json(r.trace_file)},
              {"error", r.error.empty() ? Json(nullptr) : Json(r.error)}};
}

Json results_json(const CompareResult& result) {
  const RunResult& u = result.unlimited;
  Json runs = Json::array();
  for (const RunResult& r : result.runs) runs.push_back(run_json(r));
  return Json{{"assumptions", result.assumptions},
              {"unlimited",
               {{"strategy", u.strategy.name},
                {"plan", u.strategy.plan},
                {"policy", u.strategy.policy},
                {"peak_bytes", u.peak_bytes},
                {"step_time_s", or_null(u.step_time_s)},
                {"recompute_flops", u.recompute_flops},
                {"bytes_offloaded", u.bytes_offloaded},
                {"stall_s", or_null(u.stall_s)},
                {"loss", or_null(u.loss)},
                {"trace", u.trace_file.empty() ? Json(nullptr) : Json(u.trace_file)}}},
              {"runs", std::move(runs)}};
}

std::string results_csv(const CompareResult& result) {
  static const std::vector<std::string> kFields{"strategy",
                                                "plan",
                                                "policy",
                                                "budget_bytes",
                                                "budget_fraction",
                                                "peak_bytes",
                                                "fits",
                                                "step_time_s",
                                                "slowdown",
                                                "overhead",
                                                "recompute_flops",
                                                "bytes_offloaded",
                                                "bytes_prefetched",
                                                "stall_s",
                                                "loss",
                                                "evictions",
                                                "recomputes",
                                                "miss_bytes"};
  std::vector<Json> rows;
  for (const RunResult& r : result.runs) rows.push_back(run_json(r));
  return csv_table(rows, kFields);
}

void write_report(const CompareResult& result, const std::string& dir) {
  write_file(dir + "/results.csv", results_csv(result));
  std::vector<std::string> strategies;
  for (const RunResult& r : result.runs)
    if (std::find(strategies.begin(), strategies.end(), r.strategy.name) == strategies.end())
      strategies.push_back(r.strategy.name);
  if (!result.unlimited.trace_file.empty())
    for (const std::string& s : strategies)
      write_file(dir + "/memory-" + file_slug(s) + ".svg",
                 render_svg(memory_chart(s, result, dir)));
  write_file(dir + "/overhead.svg", render_svg(overhead_chart(result)));
  write_file(dir + "/results.json", results_json(result).dump(2) + "\n");
}

}  // namespace memento::cli
