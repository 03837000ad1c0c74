#include "cli/calibrate_cmd.hpp"

#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>

#include "calibrate/calibrate.hpp"
#include "memento/backends.hpp"
#include "memento/bytes.hpp"
#include "memento/device_spec.hpp"
#include "memento/error.hpp"

namespace memento::cli {
namespace {

void progress(std::string_view line) {
  fmt::print(stderr, "calibrate: {}\n", line);
  std::fflush(stderr);
}

void summarise(const DeviceProfile& p, const std::string& out) {
  fmt::print("wrote {}: {}\n", out, p.source);
  fmt::print("  rates      matrix {:.3g} FLOP/s, vector {:.3g} FLOP/s, memory {:.3g} B/s\n",
             p.matrix_flops, p.vector_flops, p.hbm_bandwidth);
  fmt::print(
      "  link       h2d {:.3g} B/s, d2h {:.3g} B/s; a copy beside the other way's {:.2f}x "
      "slower; copies overlap kernels {:.0f}%, take {:.2f}x as long under them\n",
      p.h2d_bandwidth, p.d2h_bandwidth, p.copy_slowdown_both_ways, p.copy_overlap * 100,
      p.copy_slowdown_under_kernels);
  fmt::print(
      "  host       launch {:.2f} us; segment allocate {:.1f} us, free {:.1f} us; AdamW "
      "{:.3g} B/s\n",
      p.launch_latency * 1e6, p.segment_allocate_seconds * 1e6, p.segment_free_seconds * 1e6,
      p.host_optimizer_bandwidth);
  std::vector<MeasuredKernel> top = p.kernels;
  std::sort(top.begin(), top.end(), [](const auto& a, const auto& b) {
    return a.seconds * static_cast<double>(a.samples) > b.seconds * static_cast<double>(b.samples);
  });
  fmt::print("  kernels    {} measured; the longest in total:\n", p.kernels.size());
  for (std::size_t i = 0; i < std::min<std::size_t>(8, top.size()); ++i) {
    const MeasuredKernel& k = top[i];
    fmt::print("    {:<36} {:>10.1f} us x {:>4}  {:>8.2f} GFLOP/s\n", k.name, k.seconds * 1e6,
               k.samples, k.seconds > 0 ? k.flops / k.seconds / 1e9 : 0.0);
  }
}

}  // namespace

CLI::App* add_calibrate_command(CLI::App& app, CalibrateCliOptions& o) {
  auto* cmd =
      app.add_subcommand("calibrate",
                         "measure a real device (or fit recorded runs) into a profile for --device "
                         "sim:PROFILE.json");
  cmd->add_option("--device", o.device, "the device to measure: host[:CAPACITY] or cuda[:N]");
  cmd->add_option("--fit", o.fit,
                  "fit a profile from a `memento compare --out` results.json instead of "
                  "measuring (with --trace and --base)");
  cmd->add_option("--trace", o.trace,
                  "with --fit: a Chrome trace of the same run with device spans (compare --out "
                  "writes trace-unlimited.json), or one recorded with CUDA_LAUNCH_BLOCKING=1");
  cmd->add_option("--base", o.base,
                  "with --fit: the datasheet profile of the recorded device (e.g. h200)");
  cmd->add_option("--out", o.out, "the profile file to write (PROFILE.json)")->required();
  cmd->add_option("--model", o.model,
                  "the workload whose kernels are measured (default gpt2-tiny)");
  cmd->add_option("--batch", o.batch, "batch size (default: the preset's)")
      ->check(CLI::Range(1, 65536));
  cmd->add_option("--seq", o.seq, "sequence length (default: the preset's)")
      ->check(CLI::Range(1, 1 << 20));
  cmd->add_option("--dtype", o.dtype, "fp32, bf16, or auto (bf16 where the device has it)");
  cmd->add_option("--attention", o.attention, "eager or fused");
  cmd->add_option("--steps", o.steps, "training steps timed; the first is not used (default 4)")
      ->check(CLI::Range(2, 1000));
  cmd->add_option("--timing", o.timing,
                  "when measuring, how kernels are timed: stream (default: each kernel's device "
                  "span, kernels "
                  "queued as in training) or blocking (one at a time, less an empty kernel's "
                  "round trip)");
  return cmd;
}

int run_calibrate_command(const CalibrateCliOptions& o) {
  MEMENTO_EXPECTS(o.out.ends_with(".json"),
                  fmt::format("--out=\"{}\": a profile file must end in .json (that is how "
                              "--device sim:PROFILE.json tells it from a built-in profile)",
                              o.out),
                  ConfigError);
  if (o.fit) {
    MEMENTO_EXPECTS(!o.device,
                    "--fit and --device exclude each other: fit recorded runs, or "
                    "measure a device",
                    ConfigError);
    MEMENTO_EXPECTS(o.trace && o.base,
                    "--fit needs --trace (a Chrome trace of the run) and --base (the "
                    "datasheet profile of its device, e.g. h200)",
                    ConfigError);
    const DeviceProfile p =
        calibrate::fit_profile(*o.fit, *o.trace, find_device_profile(*o.base), progress);
    write_device_profile(p, o.out);
    summarise(p, o.out);
    return 0;
  }
  MEMENTO_EXPECTS(o.device.has_value(),
                  "calibrate needs --device host|cuda[:N] (measure it) or --fit RESULTS.json",
                  ConfigError);
  const DeviceSpec spec = parse_device(*o.device, "--device");
  MEMENTO_EXPECTS(spec.kind != BackendKind::sim,
                  fmt::format("--device=\"{}\": calibrate measures a real device; accepted: "
                              "host[:CAPACITY], cuda[:N]",
                              *o.device),
                  ConfigError);
  auto backend = make_backend(spec);
  calibrate::CalibrateOptions c;
  c.model = nn::gpt2_preset(o.model);
  if (o.batch > 0) c.model.batch = o.batch;
  if (o.seq > 0) c.model.seq = o.seq;
  c.model.attention = nn::parse_attention(o.attention);
  MEMENTO_EXPECTS(
      o.dtype == "auto" || o.dtype == "fp32" || o.dtype == "bf16",
      fmt::format("--dtype=\"{}\" is not accepted; accepted: fp32, bf16, auto", o.dtype),
      ConfigError);
  const bool bf16 = o.dtype == "bf16" || (o.dtype == "auto" && backend->info().supports_bf16);
  c.model.dtype = bf16 ? nn::DType::bf16 : nn::DType::f32;
  c.steps = o.steps;
  MEMENTO_EXPECTS(
      o.timing == "stream" || o.timing == "blocking",
      fmt::format("--timing=\"{}\" is not accepted; accepted: stream, blocking", o.timing),
      ConfigError);
  c.timing =
      o.timing == "stream" ? calibrate::KernelTiming::stream : calibrate::KernelTiming::blocking;
  c.progress = progress;
  const DeviceProfile p = calibrate::measure_device(*backend, c);
  write_device_profile(p, o.out);
  summarise(p, o.out);
  return 0;
}

}  // namespace memento::cli
