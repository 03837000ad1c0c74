#include "calibrate/kernel_table.hpp"

#include <algorithm>
#include <map>
#include <string>
#include <tuple>

#include "memento/caching_allocator.hpp"
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

std::vector<KernelSample> time_training(Backend& backend, const nn::Gpt2Config& model, int steps,
                                        std::uint64_t seed, bool blocking) {
  TimingBackend timed(backend, blocking);
  CachingAllocator alloc(timed, AllocatorOptions{});
  PinnedHostPool pool(timed, std::size_t{1} << 30);
  Runtime rt(timed, alloc, &pool, make_policy("lru"), RuntimeOptions{});
  nn::Tape tape(rt, alloc, timed);
  auto gpt = nn::make_gpt2(model, tape, seed);
  nn::Trainer trainer(tape, *gpt, nn::AdamWOptions{});
  std::vector<KernelSample> samples;
  for (int i = 0; i < steps; ++i) {
    (void)trainer.step();
    std::vector<KernelSample> step = timed.take_samples();
    if (i == 0 && steps > 1) continue;  // start-up: library loading, first touches
    samples.insert(samples.end(), std::make_move_iterator(step.begin()),
                   std::make_move_iterator(step.end()));
  }
  return samples;
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
