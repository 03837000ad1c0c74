#include "calibrate/kernel_table.hpp"

#include <fmt/format.h>
#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <optional>
#include <string>
#include <system_error>
#include <tuple>

#include "calibrate/trace_spans.hpp"
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
// A private directory in the temporary directory (mkdtemp: not a name another user can
// plant), holding this calibration's trace; removed with it.
struct TemporaryTrace {
  std::filesystem::path dir;
  std::filesystem::path path;
  TemporaryTrace() {
    std::string name = (std::filesystem::temp_directory_path() / "memento-calibrate-XXXXXX");
    MEMENTO_EXPECTS(::mkdtemp(name.data()) != nullptr,
                    fmt::format("calibrate: cannot create a directory \"{}\" for its trace: {} "
                                "(TMPDIR names the temporary directory)",
                                name, std::strerror(errno)),
                    ConfigError);
    dir = name;
    path = dir / "trace.json";
  }
  ~TemporaryTrace() {
    std::error_code ignored;
    std::filesystem::remove_all(dir, ignored);
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
  if (stream) {
    out.kernels = TraceSpans(trace->path).kernels(from);
    MEMENTO_EXPECTS(!out.kernels.empty(),
                    fmt::format("calibrate: the runtime's trace on {} has no device spans (its "
                                "kernels cannot be timed in stream order here); accepted: "
                                "--timing blocking",
                                backend.info().name),
                    ConfigError);
    out.kernel_gap = mean_kernel_gap(out.kernels);
  }
  out.launch_latency = median(std::move(issue));
  return out;
}

double mean_kernel_gap(std::vector<KernelSample> spans) {
  std::sort(spans.begin(), spans.end(),
            [](const KernelSample& a, const KernelSample& b) { return a.start < b.start; });
  std::vector<double> gaps;
  for (std::size_t i = 1; i < spans.size(); ++i)
    gaps.push_back(std::max(0.0, spans[i].start - (spans[i - 1].start + spans[i - 1].seconds)));
  if (gaps.empty()) return 0;
  // The longest tenth are waits (for a copy, a synchronisation, the next step), not
  // hand-overs. The rest mix kernels that were queued (no gap) with kernels the stream had
  // to wait for the host to issue: their mean, not their median, is what a step loses.
  std::sort(gaps.begin(), gaps.end());
  const std::size_t kept = std::max<std::size_t>(1, gaps.size() * 9 / 10);
  double sum = 0;
  for (std::size_t i = 0; i < kept; ++i) sum += gaps[i];
  return sum / static_cast<double>(kept);
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
