#include "calibrate/kernel_table.hpp"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <system_error>
#include <tuple>

#include "common/files.hpp"
#include "common/text.hpp"
#include "memento/caching_allocator.hpp"
#include "memento/error.hpp"
#include "memento/pinned_host_pool.hpp"
#include "memento/policy.hpp"
#include "memento/runtime.hpp"
#include "nn/tape.hpp"
#include "nn/train.hpp"

namespace memento::calibrate {

double median(std::vector<double> values) {
  if (values.empty()) return 0;
  const auto mid = values.begin() + static_cast<std::ptrdiff_t>(values.size() / 2);
  std::nth_element(values.begin(), mid, values.end());
  if (values.size() % 2 == 1) return *mid;
  return (*mid + *std::max_element(values.begin(), mid)) / 2;
}

namespace {

// A file name in the temporary directory for this process's calibration trace, removed
// when it goes out of scope.
struct TemporaryTrace {
  std::filesystem::path path;
  TemporaryTrace() {
    static std::atomic<int> count{0};
    path = std::filesystem::temp_directory_path() /
           fmt::format("memento-calibrate-{}-{}.json", ::getpid(), count++);
  }
  ~TemporaryTrace() {
    std::error_code ignored;
    std::filesystem::remove(path, ignored);
  }
  TemporaryTrace(const TemporaryTrace&) = delete;
  TemporaryTrace& operator=(const TemporaryTrace&) = delete;
};

}  // namespace

TimedTraining time_training(Backend& backend, const nn::Gpt2Config& model, int steps,
                            std::uint64_t seed, KernelTiming timing) {
  const bool stream = timing == KernelTiming::stream;
  TimingBackend timed(backend, !stream);
  std::optional<TemporaryTrace> trace;
  RuntimeOptions options;
  if (stream) options.trace_file = trace.emplace().path.string();
  TimedTraining out;
  std::vector<double> issue;
  double from = 0;  // the backend clock when the first step had finished
  {
    CachingAllocator alloc(timed, AllocatorOptions{});
    PinnedHostPool pool(timed, std::size_t{1} << 30);
    Runtime rt(timed, alloc, &pool, make_policy("lru"), options);
    nn::Tape tape(rt, alloc, timed);
    auto gpt = nn::make_gpt2(model, tape, seed);
    nn::Trainer trainer(tape, *gpt, nn::AdamWOptions{});
    for (int i = 0; i < steps; ++i) {
      (void)trainer.step();
      std::vector<KernelSample> step = timed.take_samples();
      if (i == 0 && steps > 1) {  // start-up: library loading, first touches
        backend.synchronize_all();
        from = backend.now();
        continue;
      }
      for (const KernelSample& s : step) issue.push_back(s.issue_seconds);
      if (!stream)
        out.kernels.insert(out.kernels.end(), std::make_move_iterator(step.begin()),
                           std::make_move_iterator(step.end()));
    }
    if (stream) rt.flush_trace();
  }
  if (stream) out.kernels = kernel_spans(trace->path, from);
  out.launch_latency = median(std::move(issue));
  return out;
}

namespace {

nlohmann::json read_trace(const std::filesystem::path& trace) {
  using Json = nlohmann::json;
  Json j;
  try {
    j = Json::parse(files::read(trace, "trace"));
  } catch (const Json::exception& e) {
    MEMENTO_FAIL(ConfigError, fmt::format("the trace \"{}\" is not JSON: {}", trace.string(),
                                          text::printable(e.what())));
  }
  MEMENTO_EXPECTS(j.is_object() && j.contains("traceEvents") && j["traceEvents"].is_array(),
                  fmt::format("the trace \"{}\" has no traceEvents array (a Chrome trace from "
                              "memento train --trace or compare --out)",
                              trace.string()),
                  ConfigError);
  return j;
}

bool is_span(const nlohmann::json& e, std::string_view category) {
  return e.is_object() && e.value("ph", "") == "X" && e.value("cat", "") == category &&
         e.contains("ts") && e["ts"].is_number() && e.contains("dur") && e["dur"].is_number();
}

}  // namespace

std::vector<KernelSample> kernel_spans(const std::filesystem::path& trace, double from_seconds) {
  const nlohmann::json j = read_trace(trace);
  std::vector<KernelSample> out;
  for (const nlohmann::json& e : j["traceEvents"]) {
    if (!is_span(e, "kernel") || !e.contains("args") || !e["args"].is_object()) continue;
    if (e["ts"].get<double>() < from_seconds * 1e6) continue;
    const nlohmann::json& args = e["args"];
    KernelSample s;
    s.name = args.value("kernel", e.value("name", ""));
    s.cost = {args.value("flops", 0.0), args.value("bytes", 0.0),
              args.value("tensor_cores", false)};
    s.seconds = e["dur"].get<double>() * 1e-6;
    out.push_back(std::move(s));
  }
  return out;
}

double first_step_end(const std::filesystem::path& trace) {
  const nlohmann::json j = read_trace(trace);
  double first_start = 0, end = 0;
  bool found = false;
  for (const nlohmann::json& e : j["traceEvents"]) {
    if (!is_span(e, "step")) continue;
    const double ts = e["ts"].get<double>();
    if (!found || ts < first_start) {
      first_start = ts;
      end = ts + e["dur"].get<double>();
      found = true;
    }
  }
  return end * 1e-6;
}

std::vector<MeasuredKernel> median_kernels(const std::vector<KernelSample>& samples,
                                           double overhead) {
  using Key = std::tuple<std::string, double, double>;
  std::map<Key, std::size_t> index;
  std::vector<MeasuredKernel> out;
  std::vector<std::vector<double>> times;
  for (const KernelSample& s : samples) {
    const Key key{s.name, s.cost.flops, s.cost.bytes};
    auto [it, fresh] = index.try_emplace(key, out.size());
    if (fresh) {
      out.push_back({s.name, s.cost.flops, s.cost.bytes, s.cost.tensor_cores, 0, 0});
      times.emplace_back();
    }
    times[it->second].push_back(s.seconds);
  }
  for (std::size_t i = 0; i < out.size(); ++i) {
    out[i].samples = times[i].size();
    out[i].seconds = std::max(0.0, median(times[i]) - overhead);
  }
  return out;
}

void fit_rates(DeviceProfile& p) {
  for (const bool tensor : {true, false}) {
    double flops = 0, seconds = 0;
    const double rate = tensor ? p.matrix_flops : p.vector_flops;
    for (const MeasuredKernel& k : p.kernels) {
      if (k.tensor_cores != tensor || k.seconds <= 0 || k.flops <= 0) continue;
      if (k.flops / rate < k.bytes / p.hbm_bandwidth) continue;  // memory-bound
      flops += k.flops;
      seconds += k.seconds;
    }
    if (seconds > 0) (tensor ? p.matrix_flops : p.vector_flops) = flops / seconds;
  }
  std::map<std::string, std::pair<double, double>> by_name;  // roofline, measured
  for (const MeasuredKernel& k : p.kernels) {
    if (k.seconds <= 0) continue;
    const double roofline = roofline_seconds({k.flops, k.bytes, k.tensor_cores}, p.matrix_flops,
                                             p.vector_flops, p.hbm_bandwidth);
    if (roofline <= 0) continue;
    auto& [r, m] = by_name[k.name];
    r += roofline;
    m += k.seconds;
  }
  p.efficiencies.clear();
  for (const auto& [name, rm] : by_name)
    p.efficiencies.push_back({name, std::clamp(rm.first / rm.second, 1e-4, 1e4)});
}

}  // namespace memento::calibrate
