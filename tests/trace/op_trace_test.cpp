// Every kernel of a training step in the runtime's Chrome trace, as a span of its device
// time: forward, backward, recompute and optimizer, on host and sim; the host AdamW as a
// host span.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "memento/backends.hpp"
#include "nn/models/gpt2.hpp"
#include "nn/nn_rig.hpp"
#include "nn/train.hpp"

namespace memento::nn {
namespace {

using Json = nlohmann::json;

struct Traced {
  Json trace;
  std::vector<StepStats> steps;
};

std::unique_ptr<Backend> make(const std::string& device) {
  return device == "host" ? testing::host_backend()
                          : make_sim_backend(find_device_profile("a100-40gb"));
}

// Peak reserved bytes of an untraced, unlimited step of gpt2-tiny.
std::size_t unlimited_peak(const std::string& device) {
  testing::Rig s(make(device), 0, "lru");
  s.model = make_gpt2(gpt2_preset("gpt2-tiny"), s.tape, 7);
  Trainer trainer(s.tape, *s.model, {});
  return trainer.step().stats.peak_reserved;
}

// Two gpt2-tiny steps traced, under a budget that makes the `recompute` policy discard
// (60% of the unlimited peak: the device AdamW state must still fit).
Traced run(const std::string& device, OptimizerPlacement where) {
  const std::size_t budget = unlimited_peak(device) * 3 / 5;
  const auto path = std::filesystem::temp_directory_path() /
                    ("memento_op_trace_" + device + "_" +
                     std::to_string(::testing::UnitTest::GetInstance()->random_seed()) + ".json");
  Traced out;
  {
    testing::Rig s(make(device), budget, "recompute", {.trace_file = path.string()});
    s.model = make_gpt2(gpt2_preset("gpt2-tiny"), s.tape, 7);
    Trainer trainer(s.tape, *s.model, {.placement = where});
    for (int i = 0; i < 2; ++i) out.steps.push_back(trainer.step().stats);
  }  // written when the runtime goes
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << "no trace at " << path;
  if (in.good()) out.trace = Json::parse(in);
  std::filesystem::remove(path);
  return out;
}

std::vector<Json> spans(const Json& trace, const std::string& category) {
  std::vector<Json> out;
  for (const Json& e : trace.at("traceEvents"))
    if (e.value("ph", "") == "X" && e.value("cat", "") == category) out.push_back(e);
  return out;
}

// The viewer's thread names: tid -> track.
std::map<int, std::string> tracks(const Json& trace) {
  std::map<int, std::string> out;
  for (const Json& e : trace.at("traceEvents"))
    if (e.value("ph", "") == "M" && e.value("name", "") == "thread_name")
      out[e.at("tid").get<int>()] = e.at("args").at("name").get<std::string>();
  return out;
}

void expect_complete(const Traced& t, const std::string& device, bool device_adamw) {
  SCOPED_TRACE(device);
  const std::vector<Json> kernels = spans(t.trace, "kernel");
  const std::vector<Json> steps = spans(t.trace, "step");
  ASSERT_EQ(steps.size(), 2u);
  ASSERT_FALSE(kernels.empty());
  EXPECT_EQ(t.trace.at("otherData").at("device_timing"),
            device == "host" ? "host worker clock" : "sim model");
  const std::map<int, std::string> names = tracks(t.trace);
  std::map<std::string, std::size_t> by_phase;
  std::map<int, std::vector<Json>> by_track;
  for (const Json& k : kernels) {
    const Json& args = k.at("args");
    for (const char* key : {"kernel", "phase", "flops", "bytes", "tensor_cores"})
      EXPECT_TRUE(args.contains(key)) << k.dump() << " has no " << key;
    const std::string phase = args.at("phase");
    ++by_phase[phase];
    if (phase == "forward" || phase == "recompute") {
      EXPECT_TRUE(args.contains("op")) << k.dump();
    }
    EXPECT_EQ(args.at("kernel"), k.at("name"));
    EXPECT_GE(k.at("dur").get<double>(), 0.0);
    by_track[k.at("tid").get<int>()].push_back(k);
    // Inside a step (times in microseconds; 1 ns of slack for the rounding of sums).
    const double ts = k.at("ts").get<double>();
    const double end = ts + k.at("dur").get<double>();
    const bool inside = std::any_of(steps.begin(), steps.end(), [&](const Json& s) {
      const double s0 = s.at("ts").get<double>();
      return ts >= s0 - 1e-3 && end <= s0 + s.at("dur").get<double>() + 1e-3;
    });
    EXPECT_TRUE(inside) << k.dump() << " lies outside every step";
  }
  for (const char* phase : {"forward", "backward", "recompute"})
    EXPECT_GT(by_phase[phase], 0u) << "no " << phase << " kernel";
  EXPECT_EQ(by_phase["optimizer"] > 0, device_adamw);
  // One device track, the compute stream's, on which kernels run one at a time.
  ASSERT_EQ(by_track.size(), 1u);
  EXPECT_EQ(names.at(by_track.begin()->first), "device: compute stream");
  std::vector<Json>& on_stream = by_track.begin()->second;
  std::sort(on_stream.begin(), on_stream.end(), [](const Json& a, const Json& b) {
    return a.at("ts").get<double>() < b.at("ts").get<double>();
  });
  for (std::size_t i = 1; i < on_stream.size(); ++i)
    EXPECT_LE(on_stream[i - 1].at("ts").get<double>() + on_stream[i - 1].at("dur").get<double>(),
              on_stream[i].at("ts").get<double>() + 1e-3)
        << on_stream[i - 1].dump() << " overlaps " << on_stream[i].dump();
  // A forward kernel per host "compute" span, a recompute kernel per "recompute" span and
  // per recompute the runtime counted.
  std::size_t recomputes = 0;
  for (const StepStats& s : t.steps) recomputes += s.counters.recomputes;
  EXPECT_EQ(by_phase["forward"], spans(t.trace, "compute").size());
  EXPECT_EQ(by_phase["recompute"], spans(t.trace, "recompute").size());
  EXPECT_EQ(by_phase["recompute"], recomputes);
  const std::size_t host_adamw = spans(t.trace, "optimizer").size();
  EXPECT_EQ(host_adamw, device_adamw ? 0u : 2u);
}

TEST(OpTrace, HostStepHasEveryKernelOnDeviceTime) {
  expect_complete(run("host", OptimizerPlacement::device), "host", true);
}

TEST(OpTrace, SimStepHasEveryKernelOnModelledTime) {
  const Traced t = run("sim", OptimizerPlacement::device);
  expect_complete(t, "sim", true);
  // The model's times: a kernel lasts its roofline duration, so the compute stream's spans
  // of a step sum to at most the step.
  double busy = 0;
  for (const Json& k : spans(t.trace, "kernel")) busy += k.at("dur").get<double>();
  double steps = 0;
  for (const Json& s : spans(t.trace, "step")) steps += s.at("dur").get<double>();
  EXPECT_GT(busy, 0.0);
  EXPECT_LE(busy, steps + 1e-3);
}

// On a measured profile the sim charges kernel_seconds (here: the roofline plus a kernel
// overhead), and its spans show that duration, not the datasheet roofline.
TEST(OpTrace, SimSpansLastWhatAMeasuredProfileCharges) {
  DeviceProfile p = find_device_profile("a100-40gb");
  p.kernel_overhead = 2e-3;
  const auto path = std::filesystem::temp_directory_path() /
                    ("memento_op_trace_measured_" +
                     std::to_string(::testing::UnitTest::GetInstance()->random_seed()) + ".json");
  {
    testing::Rig s(make_sim_backend(p), 0, "lru", {.trace_file = path.string()});
    s.model = make_gpt2(gpt2_preset("gpt2-tiny"), s.tape, 7);
    Trainer trainer(s.tape, *s.model, {});
    (void)trainer.step();
  }
  std::ifstream in(path);
  ASSERT_TRUE(in.good()) << "no trace at " << path;
  const Json trace = Json::parse(in);
  std::filesystem::remove(path);
  std::size_t checked = 0;
  for (const Json& k : spans(trace, "kernel")) {
    const Json& args = k.at("args");
    const KernelCost cost{args.at("flops").get<double>(), args.at("bytes").get<double>(),
                          args.at("tensor_cores").get<bool>()};
    const double expected = p.kernel_seconds(k.at("name").get<std::string>(), cost);
    EXPECT_NEAR(k.at("dur").get<double>(), expected * 1e6, 1e-3) << k.dump();
    checked += expected >= p.kernel_overhead ? 1 : 0;
  }
  EXPECT_GT(checked, 10u);
}

TEST(OpTrace, HostAdamWIsAHostSpan) {
  for (const char* device : {"host", "sim"})
    expect_complete(run(device, OptimizerPlacement::host), device, false);
}

TEST(OpTrace, FlushMidRunWritesTheKernelsSoFar) {
  const auto path = std::filesystem::temp_directory_path() /
                    ("memento_op_trace_flush_" +
                     std::to_string(::testing::UnitTest::GetInstance()->random_seed()) + ".json");
  Json trace;
  {
    testing::Rig s(testing::host_backend(), 0, "lru", {.trace_file = path.string()});
    s.model = make_gpt2(gpt2_preset("gpt2-tiny"), s.tape, 7);
    Trainer trainer(s.tape, *s.model, {});
    (void)trainer.step();
    s.rt.flush_trace();
    std::ifstream in(path);
    ASSERT_TRUE(in.good());
    trace = Json::parse(in);
  }
  std::filesystem::remove(path);
  EXPECT_FALSE(spans(trace, "kernel").empty());
}

}  // namespace
}  // namespace memento::nn
