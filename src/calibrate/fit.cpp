// fit_profile: a device profile from recorded runs (a compare results.json and a Chrome
// trace with blocking launches), so data recorded on a GPU calibrates the sim without one.
#include <fmt/format.h>

#include <algorithm>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>

#include "calibrate/calibrate.hpp"
#include "calibrate/kernel_table.hpp"
#include "calibrate/sim_runs.hpp"
#include "calibrate/trace_spans.hpp"
#include "common/files.hpp"
#include "common/text.hpp"
#include "memento/backends.hpp"
#include "memento/error.hpp"

namespace memento::calibrate {
namespace {

using Json = nlohmann::json;
namespace fs = std::filesystem;

Json read_json(const fs::path& path, std::string_view what) {
  try {
    return Json::parse(files::read(path, what));
  } catch (const Json::exception& e) {
    MEMENTO_FAIL(ConfigError, fmt::format("the {} \"{}\" is not JSON: {}", what, path.string(),
                                          text::printable(e.what())));
  }
}

// Median span seconds of each forward op in `trace` (category "compute").
std::map<std::string, double> op_times(const TraceSpans& trace) {
  std::map<std::string, std::vector<double>> spans;
  trace.for_each("compute", [&](const Json& e, double, double seconds) {
    spans[e.at("name").get<std::string>()].push_back(seconds);
  });
  MEMENTO_EXPECTS(
      !spans.empty(),
      fmt::format("the trace \"{}\" has no compute spans to fit", trace.path().string()),
      ConfigError);
  std::map<std::string, double> out;
  for (auto& [name, t] : spans) out[name] = median(std::move(t));
  return out;
}

// What the results file measured: the unlimited step, and the every-layer run's overhead and
// budget fraction (the run the forward's time is fitted to).
struct Recorded {
  double unlimited_s = 0;
  double every_layer_overhead = 0;
  double every_layer_fraction = 0;
  /// What the device's backend stated to the cost model; none in results written before
  /// compare recorded them (when cuda stated none).
  StatedRates stated;
  bool stated_recorded = false;
};

// `every_layer`: the every-layer run is required (the blocking-trace fit scales to it).
Recorded recorded_runs(const fs::path& results, bool every_layer) {
  const Json j = read_json(results, "results file");
  Recorded r;
  try {
    r.unlimited_s = j.at("unlimited").at("step_time_s").get<double>();
    if (const Json& a = j.at("assumptions"); a.contains("stated_rates")) {
      const Json& s = a["stated_rates"];
      r.stated = {s.at("matrix_flops").get<double>(), s.at("vector_flops").get<double>(),
                  s.at("memory_bandwidth").get<double>(), s.at("h2d_bandwidth").get<double>(),
                  s.at("d2h_bandwidth").get<double>()};
      r.stated_recorded = true;
    }
    for (const Json& run : j.at("runs")) {
      if (run.at("strategy") != "every-layer" || !run.at("fits").get<bool>()) continue;
      r.every_layer_overhead = run.at("overhead").get<double>();
      r.every_layer_fraction = run.at("budget_fraction").get<double>();
      break;
    }
  } catch (const Json::exception& e) {
    MEMENTO_FAIL(ConfigError, fmt::format("the results file \"{}\": {}", results.string(),
                                          text::printable(e.what())));
  }
  MEMENTO_EXPECTS(r.unlimited_s > 0,
                  fmt::format("the results file \"{}\" has no unlimited step "
                              "time (a results.json from memento compare)",
                              results.string()),
                  ConfigError);
  MEMENTO_EXPECTS(!every_layer || r.every_layer_overhead > 0,
                  fmt::format("the results file \"{}\" needs the unlimited step and a run of "
                              "strategy every-layer that fit (compare --strategies "
                              "every-layer,...)",
                              results.string()),
                  ConfigError);
  return r;
}

// `p` with its measured kernels' times times `forward` and everything derived from its rates
// (the backward, the optimizer) times `rest`.
DeviceProfile scaled(const DeviceProfile& p, double forward, double rest) {
  DeviceProfile q = p;
  for (MeasuredKernel& k : q.kernels) k.seconds *= forward;
  q.matrix_flops /= rest;
  q.vector_flops /= rest;
  q.hbm_bandwidth /= rest;
  return q;
}

}  // namespace

nn::Gpt2Config workload_of(const fs::path& results) {
  const Json j = read_json(results, "results file");
  const auto fail = [&](std::string_view what) {
    MEMENTO_FAIL(ConfigError, fmt::format("the results file \"{}\": {} (a results.json from "
                                          "memento compare --out)",
                                          results.string(), what));
  };
  if (!j.is_object() || !j.contains("assumptions") || !j["assumptions"].is_object())
    fail("no \"assumptions\" object");
  const Json& a = j["assumptions"];
  try {
    nn::Gpt2Config c = nn::gpt2_preset(a.at("model").get<std::string>());
    c.batch = a.at("batch").get<int>();
    c.seq = a.at("seq").get<int>();
    c.dtype = a.at("dtype").get<std::string>() == "bf16" ? nn::DType::bf16 : nn::DType::f32;
    c.attention = nn::parse_attention(a.value("attention", std::string("eager")));
    c.head_chunks = a.value("head_chunks", 0);
    if (a.value("optimizer_state", std::string("device")) != "device")
      fail("the run kept AdamW on the host; fitting needs AdamW on the device");
    return c;
  } catch (const Json::exception& e) {
    fail(fmt::format("assumptions: {}", text::printable(e.what())));
  }
  return {};
}

namespace {

// The fit from a trace with device spans (category "kernel"): every kernel of the steps
// after the first at its own device time, nothing to scale.
DeviceProfile fit_device_spans(const fs::path& results, const fs::path& trace,
                               const DeviceProfile& base, const std::vector<KernelSample>& spans,
                               const Progress& progress) {
  const nn::Gpt2Config model = workload_of(results);
  const Recorded rec = recorded_runs(results, false);
  DeviceProfile p = base;
  p.stated_rates = rec.stated;
  p.kernels = median_kernels(spans, 0);
  p.kernel_gap = mean_kernel_gap(spans);
  fit_rates(p);
  const double sim_s = sim_run(p, model, "none", 0).step_seconds;
  p.source = fmt::format(
      "fitted by memento calibrate --fit from {} and the device spans of {} ({} kernels from "
      "{} spans after the first step, unscaled: the sim's unlimited step {:.2f} ms against "
      "{:.2f} ms recorded); rates for kernels not in the trace from the {} datasheet; the cost "
      "model's rates as the run's backend stated them{}",
      results.filename().string(), trace.filename().string(), p.kernels.size(), spans.size(),
      sim_s * 1e3, rec.unlimited_s * 1e3, base.name,
      rec.stated_recorded ? "" : " (none: the results predate stated_rates)");
  if (progress)
    progress(
        fmt::format("fitted {} kernels of {} from device spans: matrix {:.2f} TFLOP/s, "
                    "vector {:.2f} TFLOP/s; the sim's unlimited step {:.2f} ms, recorded "
                    "{:.2f} ms",
                    p.kernels.size(), model.name, p.matrix_flops / 1e12, p.vector_flops / 1e12,
                    sim_s * 1e3, rec.unlimited_s * 1e3));
  return p;
}

}  // namespace

DeviceProfile fit_profile(const fs::path& results, const fs::path& trace, const DeviceProfile& base,
                          const Progress& progress) {
  const TraceSpans file(trace);
  std::vector<KernelSample> spans = file.kernels(file.first_step_end());
  if (spans.empty()) spans = file.kernels(0);  // a one-step run: its only step
  if (!spans.empty()) return fit_device_spans(results, trace, base, spans, progress);
  const nn::Gpt2Config model = workload_of(results);
  const std::map<std::string, double> measured = op_times(file);
  // The kernels of one step and their costs, from the model on the datasheet profile.
  DeviceProfile unbounded = base;
  unbounded.capacity = std::max(base.capacity, std::size_t{1} << 50);
  auto sim = make_sim_backend(unbounded);
  const std::vector<MeasuredKernel> catalog =
      median_kernels(time_training(*sim, model, 2, 1234, KernelTiming::blocking).kernels, 0);

  // Each span is the op's device time plus the host's fixed cost of a blocking launch
  // (runtime bookkeeping, allocation, launch, synchronisation): estimated as the smallest
  // excess over the datasheet roofline among the ops, and taken off every op.
  double overhead = std::numeric_limits<double>::infinity();
  std::size_t matched = 0;
  for (const MeasuredKernel& k : catalog) {
    const auto it = measured.find(k.name);
    if (it == measured.end()) continue;
    ++matched;
    overhead = std::min(
        overhead, it->second - base.kernel_seconds(k.name, {k.flops, k.bytes, k.tensor_cores}));
  }
  MEMENTO_EXPECTS(matched > 0,
                  fmt::format("the trace \"{}\" names none of the kernels of {} (batch {}): was it "
                              "recorded from the run in \"{}\"?",
                              trace.string(), model.name, model.batch, results.string()),
                  ConfigError);
  overhead = std::max(0.0, overhead);

  const Recorded rec = recorded_runs(results, true);
  DeviceProfile p = base;
  p.stated_rates = rec.stated;
  p.source = fmt::format(
      "fitted by memento calibrate --fit from {} and {} ({} ops measured, "
      "{:.1f} us blocking-launch overhead per op taken off); rates not in the "
      "trace from the {} datasheet",
      results.filename().string(), trace.filename().string(), matched, overhead * 1e6, base.name);
  p.kernels.clear();
  for (const MeasuredKernel& k : catalog) {
    const auto it = measured.find(k.name);
    if (it == measured.end()) continue;
    MeasuredKernel m = k;
    m.seconds = std::max(0.0, it->second - overhead);
    p.kernels.push_back(std::move(m));
  }
  // Rates for the rest (backward kernels fall back to their forward's efficiency).
  fit_rates(p);

  // Blocking launches stretch each op (the blocking run's step is twice the asynchronous
  // one), and the trace has no backward: so the trace gives the ops' relative costs, and two
  // scales are fitted to the recorded steps: the forward's to the every-layer run's
  // overhead (it recomputes every block's forward once), the rest's to the unlimited step.
  double forward = 1, rest = 1;
  for (int iter = 0; iter < 4; ++iter) {
    DeviceProfile q = scaled(p, forward, rest);
    const SimRun unlimited = sim_run(q, model, "none", 0);
    const auto budget = static_cast<std::size_t>(rec.every_layer_fraction *
                                                 static_cast<double>(unlimited.peak_reserved));
    const double recompute =
        sim_run(q, model, "every-layer", budget).step_seconds - unlimited.step_seconds;
    MEMENTO_EXPECTS(recompute > 0, "fit: the every-layer run recomputed nothing on the sim",
                    LogicError);
    forward *= rec.every_layer_overhead * rec.unlimited_s / recompute;
    q = scaled(p, forward, rest);
    double forward_s = 0;
    for (const MeasuredKernel& k : q.kernels)
      forward_s += k.seconds * static_cast<double>(k.samples);
    const double step = sim_run(q, model, "none", 0).step_seconds;
    MEMENTO_EXPECTS(step > forward_s && rec.unlimited_s > forward_s,
                    fmt::format("fit: the forward alone ({:.2f} ms) takes the whole recorded step "
                                "({:.2f} ms); the recorded runs do not fit this model",
                                forward_s * 1e3, rec.unlimited_s * 1e3),
                    ConfigError);
    rest *= (rec.unlimited_s - forward_s) / (step - forward_s);
  }
  p = scaled(p, forward, rest);
  p.source += fmt::format(
      "; scaled to the recorded steps: forward x{:.3f} (every-layer +{:.1f}%), "
      "the rest x{:.3f} (unlimited {:.2f} ms); the cost model's rates as the run's backend "
      "stated them{}",
      forward, rec.every_layer_overhead * 100, rest, rec.unlimited_s * 1e3,
      rec.stated_recorded ? "" : " (none: the results predate stated_rates)");
  if (progress) {
    std::map<std::string, double> by_name;
    double total = 0;
    for (const MeasuredKernel& k : catalog) {
      const double t = p.kernel_seconds(k.name, {k.flops, k.bytes, k.tensor_cores}) *
                       static_cast<double>(k.samples);
      by_name[k.name] += t;
      total += t;
    }
    std::vector<std::pair<double, std::string>> order;
    for (const auto& [name, t] : by_name) order.emplace_back(t, name);
    std::sort(order.rbegin(), order.rend());
    for (const auto& [t, name] : order)
      progress(fmt::format("  {:<36} {:8.3f} ms of {:8.3f} ms kernels per step", name, t * 1e3,
                           total * 1e3));
    progress(
        fmt::format("fitted {} kernels of {}: matrix {:.1f} TFLOP/s, vector {:.1f} "
                    "TFLOP/s (datasheet {:.0f} / {:.0f}); {:.1f} us per op taken off",
                    p.kernels.size(), model.name, p.matrix_flops / 1e12, p.vector_flops / 1e12,
                    base.matrix_flops / 1e12, base.vector_flops / 1e12, overhead * 1e6));
  }
  return p;
}

}  // namespace memento::calibrate
