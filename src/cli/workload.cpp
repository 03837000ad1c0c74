#include "cli/workload.hpp"

#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <cmath>

#include "memento/backends.hpp"
#include "memento/caching_allocator.hpp"
#include "memento/device_profile.hpp"
#include "memento/error.hpp"
#include "memento/policy.hpp"
#include "memento/runtime.hpp"
#include "nn/tape.hpp"

namespace memento::cli {
namespace {

// The host AdamW's CPU rate on sim without a measured one: what the 2-vCPU development VM
// reached with two threads (docs/RESULTS.md, "Host AdamW").
constexpr double kDefaultHostUpdateBandwidth = 40e9;

// The least device memory training in fp32 (or bf16) with the optimizer on the device can
// need: the parameters and what lies outside the blocks (the logits and their gradient), the
// gradients and m and v (and bf16's fp32 master weights), every block's input checkpointed
// and one block's saved activations. From a model built on sim (no data is made).
double device_floor_bytes(ModelSpec m, bool bf16) {
  m.mlp_config.dtype = bf16 ? nn::DType::bf16 : nn::DType::f32;
  m.gpt.dtype = m.mlp_config.dtype;
  auto backend = make_backend(parse_device("sim:h200", "probe"));
  CachingAllocator alloc(*backend);
  Runtime rt(*backend, alloc, nullptr, make_policy("lru"));
  nn::Tape tape(rt, alloc, *backend);
  std::unique_ptr<nn::Model> model = build_model(m, tape, 0);
  const nn::ChainShape s = model->chain_shape();
  const double params = static_cast<double>(model->parameter_count());
  return s.fixed_bytes + (bf16 ? 16 : 12) * params + s.blocks * s.input_bytes + s.saved_bytes;
}

}  // namespace

void add_workload_options(CLI::App& command, WorkloadOptions& o) {
  command.add_option("--model", o.model,
                     "gpt2-tiny, gpt2-124m, gpt2-355m, gpt2-774m, gpt2-1.5b, gpt-j-6b or mlp");
  command.add_option("--batch", o.batch, "batch size (default: the preset's)")
      ->check(CLI::Range(1, 65536));
  command.add_option("--seq", o.seq, "sequence length (default: the preset's)")
      ->check(CLI::Range(1, 1 << 20));
  command.add_option("--dtype", o.dtype,
                     "fp32, bf16 or auto (default: fp32, or bf16 on sim and cuda when auto moves "
                     "AdamW to the host)");
  command.add_option("--optimizer", o.optimizer,
                     "where AdamW's state and step live: device, host (ZeRO-Offload style: fp32 "
                     "master weights, m, v and the update on the CPU, gradients streamed off the "
                     "device) or auto (default: host when device-side training cannot fit the "
                     "smallest budget)");
  command.add_option("--attention", o.attention,
                     "GPT-2's attention: eager (default; the scores are an activation, as Hugging "
                     "Face's eager attention) or fused (one op whose scores are scratch, as "
                     "FlashAttention; sim times it as a FlashAttention-2 kernel)");
  command.add_flag("--link-bf16", o.link_bf16,
                   "with AdamW on the host: gradients cross the link in bf16 (rounded to nearest "
                   "even on the device, half the bytes); changes the numerics (the update sees "
                   "rounded gradients)");
  command
      .add_option("--host-update-bandwidth", o.host_update_gbps,
                  "with AdamW on the host, on sim: the CPU step's memory traffic rate in GB/s "
                  "(default: a measured profile's, else 40; about 30 bytes per parameter)")
      ->check(CLI::PositiveNumber);
}

ModelSpec parse_model(const WorkloadOptions& o, const DeviceSpec& device,
                      std::size_t smallest_budget) {
  const std::string& dtype = o.dtype;
  const std::string& optimizer = o.optimizer;
  const int batch = o.batch, seq = o.seq;
  MEMENTO_EXPECTS(dtype == "fp32" || dtype == "bf16" || dtype == "auto",
                  fmt::format("--dtype=\"{}\" is not accepted; accepted: fp32, bf16, auto", dtype),
                  ConfigError);
  MEMENTO_EXPECTS(
      optimizer == "device" || optimizer == "host" || optimizer == "auto",
      fmt::format("--optimizer=\"{}\" is not accepted; accepted: device, host, auto", optimizer),
      ConfigError);
  MEMENTO_EXPECTS(batch >= 0 && seq >= 0, "--batch and --seq must be positive", ConfigError);
  ModelSpec m;
  if (o.model == "mlp") {
    MEMENTO_EXPECTS(seq == 0, "--seq does not apply to the mlp model", ConfigError);
    MEMENTO_EXPECTS(o.attention == "eager",
                    "--attention applies to the GPT-2 models only, not to mlp", ConfigError);
    m.mlp = true;
    if (batch > 0) m.mlp_config.batch = batch;
  } else {
    m.gpt = nn::gpt2_preset(o.model);  // ConfigError listing the presets
    m.gpt.attention = nn::parse_attention(o.attention);
    if (batch > 0) m.gpt.batch = batch;
    if (seq > 0) m.gpt.seq = seq;
  }
  bool bf16 = dtype == "bf16";
  if (optimizer == "auto") {
    const double floor = device_floor_bytes(m, bf16);
    const bool host = floor > static_cast<double>(smallest_budget);
    m.optimizer = host ? nn::OptimizerPlacement::host : nn::OptimizerPlacement::device;
    m.optimizer_reason = fmt::format(
        "chosen by --optimizer auto: {} training with AdamW on the device needs at least {} "
        "(every block checkpointed), {} the smallest budget, {}",
        bf16 ? "bf16" : "fp32", format_bytes(static_cast<std::size_t>(floor)),
        host ? "more than" : "within", format_bytes(smallest_budget));
    if (host && dtype == "auto") bf16 = device.kind != BackendKind::host;
  } else {
    m.optimizer =
        optimizer == "host" ? nn::OptimizerPlacement::host : nn::OptimizerPlacement::device;
  }
  double update_bandwidth = kDefaultHostUpdateBandwidth;
  std::string update_source = "the built-in default, the development VM's";
  if (o.host_update_gbps) {
    MEMENTO_EXPECTS(*o.host_update_gbps > 0 && std::isfinite(*o.host_update_gbps),
                    fmt::format("--host-update-bandwidth={}: accepted: a positive number of GB/s",
                                *o.host_update_gbps),
                    ConfigError);
    update_bandwidth = *o.host_update_gbps * 1e9;
    update_source = "--host-update-bandwidth";
  } else if (device.kind == BackendKind::sim) {
    const double measured = find_device_profile(device.profile).host_optimizer_bandwidth;
    if (measured > 0) {  // calibrated on the machine it models
      update_bandwidth = measured;
      update_source = "measured by memento calibrate";
    }
  }
  MEMENTO_EXPECTS(!o.link_bf16 || m.optimizer == nn::OptimizerPlacement::host,
                  "--link-bf16 applies to AdamW on the host (--optimizer host, or auto when it "
                  "chooses the host); AdamW stays on the device here",
                  ConfigError);
  m.link_bf16 = o.link_bf16;
  m.host_update_bandwidth = update_bandwidth;
  if (device.kind == BackendKind::sim) m.host_update_source = update_source;
  m.host_overlap = o.host_overlap;
  const nn::DType dt = bf16 ? nn::DType::bf16 : nn::DType::f32;
  m.mlp_config.dtype = dt;
  m.gpt.dtype = dt;
  return m;
}

std::unique_ptr<nn::Model> build_model(const ModelSpec& m, nn::Tape& tape, std::uint64_t seed) {
  return m.mlp ? nn::make_mlp(m.mlp_config, tape, seed) : nn::make_gpt2(m.gpt, tape, seed);
}

namespace {
// Device bytes per parameter of AdamW on the device: the fp32 gradient, m and v, and with
// bf16 weights the fp32 master copy (allocated at the first update).
std::size_t device_optimizer_bytes_per_parameter(const ModelSpec& m) {
  return m.dtype() == nn::DType::bf16 ? 16 : 12;
}
}  // namespace

std::size_t persistent_bytes(const ModelSpec& m, std::size_t parameters) {
  const std::size_t weights = parameters * nn::dtype_bytes(m.dtype());
  return m.optimizer == nn::OptimizerPlacement::host
             ? weights
             : weights + parameters * device_optimizer_bytes_per_parameter(m);
}

std::size_t device_capacity(const DeviceSpec& device) {
  if (device.kind == BackendKind::sim) return find_device_profile(device.profile).capacity;
  return make_backend(device)->info().capacity;
}

double trainer_bytes(const ModelSpec& m, std::size_t parameters) {
  if (m.optimizer == nn::OptimizerPlacement::device)
    return static_cast<double>(device_optimizer_bytes_per_parameter(m) * parameters);
  const double largest = m.mlp ? static_cast<double>(m.mlp_config.width) * m.mlp_config.width
                               : static_cast<double>(m.gpt.vocab) * m.gpt.channels;
  // With bf16 on the link, its rounded copy joins it at the end.
  return (m.link_bf16 ? 6 : 4) * largest;
}

std::string describe_rates(const DeviceInfo& info) {
  const auto rate = [](double r, const char* unit, double scale) {
    return r > 0 ? fmt::format("{:.1f} {}", r / scale, unit) : std::string("unknown");
  };
  const std::string rates = fmt::format(
      "matrix {}, vector {}, memory {}, link {} to the device / {} back",
      rate(info.matrix_flops, "TFLOP/s", 1e12), rate(info.vector_flops, "TFLOP/s", 1e12),
      rate(info.memory_bandwidth, "GB/s", 1e9), rate(info.h2d_bandwidth, "GB/s", 1e9),
      rate(info.d2h_bandwidth, "GB/s", 1e9));
  const std::string unknown = info.matrix_flops > 0
                                  ? std::string()
                                  : "; no compute rates, so the cost model uses 1e12 FLOP/s and "
                                    "bytes/s, right only in ratios between ops";
  if (!info.rates_source.empty()) return rates + " (" + info.rates_source + unknown + ")";
  return rates +
         (info.h2d_bandwidth > 0 ? " (the link: the host backend's throttle" : " (no link rate") +
         "; compute: not measured on this backend yet, so the cost model uses 1e12 FLOP/s "
         "and bytes/s, right only in ratios between ops, and without a link rate the "
         "budget-only path does not offload)";
}

std::string describe_optimizer(const ModelSpec& m, std::size_t parameters) {
  const std::size_t n = parameters;
  if (m.optimizer == nn::OptimizerPlacement::host)
    return fmt::format(
        "AdamW on the host (ZeRO-Offload style): fp32 master weights, m and v ({}) and the "
        "step on the CPU; the device holds the {} weights ({}) and each fp32 gradient only "
        "until the backward finishes it, when it is copied to pinned host memory{}; each "
        "parameter's update runs as its gradient arrives, overlapping the backward, and its new "
        "weights are copied back before the next forward{}",
        format_bytes(n * 12), m.dtype() == nn::DType::bf16 ? "bf16" : "fp32",
        format_bytes(n * nn::dtype_bytes(m.dtype())),
        m.link_bf16 ? " in bf16 (--link-bf16: half the bytes, rounded gradients)" : "",
        m.host_update_source.empty()
            ? std::string()
            : fmt::format("; the sim runs the CPU step at {:.1f} GB/s ({})",
                          m.host_update_bandwidth / 1e9, m.host_update_source));
  return fmt::format(
      "AdamW on the device: its state (m, v in fp32{}) and the fp32 gradients live on the "
      "device, inside the budget (with the parameters: {}, never evicted)",
      m.dtype() == nn::DType::bf16 ? ", and the fp32 master weights from the first update" : "",
      format_bytes(persistent_bytes(m, n)));
}

}  // namespace memento::cli
