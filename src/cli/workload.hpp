// The workload a CLI run trains: which model, in which dtype, and where AdamW lives. Shared
// by compare and plan.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "memento/config.hpp"
#include "nn/models/gpt2.hpp"
#include "nn/models/mlp.hpp"
#include "nn/train.hpp"

namespace CLI {
class App;
}

namespace memento::cli {

/// The workload options compare and plan share, as the user gave them.
struct WorkloadOptions {
  std::string model = "gpt2-tiny";  // a GPT-2 preset, or mlp
  int batch = 0;                    // 0: the preset's
  int seq = 0;                      // 0: the preset's (GPT-2 only)
  std::string dtype = "auto";       // fp32, bf16, or auto (see parse_model)
  std::string optimizer = "auto";   // where AdamW lives: device, host or auto
  std::string attention = "eager";  // GPT-2's attention: eager or fused
  bool link_bf16 = false;           // host AdamW: gradients cross the link in bf16
  // Host AdamW on sim: the CPU step's memory traffic rate, GB/s. Unset: a measured sim
  // profile's (host_optimizer_bandwidth), else 40.
  std::optional<double> host_update_gbps = std::nullopt;
  bool host_overlap = true;  // host AdamW: updates overlap the backward (no CLI flag)
};

/// --model, --batch, --seq, --dtype, --optimizer, --attention, --link-bf16 and
/// --host-update-bandwidth on `command`.
void add_workload_options(CLI::App& command, WorkloadOptions& options);

struct ModelSpec {
  bool mlp = false;
  nn::Gpt2Config gpt;
  nn::MlpConfig mlp_config;
  nn::OptimizerPlacement optimizer = nn::OptimizerPlacement::device;
  std::string optimizer_reason;         // why auto chose what it chose; empty when given
  bool link_bf16 = false;               // host placement: bf16 gradients over the link
  double host_update_bandwidth = 40e9;  // host placement on sim, bytes/s
  std::string host_update_source;       // on sim: where that rate comes from
  bool host_overlap = true;
  /// The trainer's AdamW options for this workload (lr aside).
  [[nodiscard]] nn::AdamWOptions adamw(float lr) const {
    return {.lr = lr,
            .placement = optimizer,
            .host_update_bandwidth = host_update_bandwidth,
            .host_overlap = host_overlap,
            .link_bf16 = link_bf16};
  }
  [[nodiscard]] nn::DType dtype() const { return mlp ? mlp_config.dtype : gpt.dtype; }
};

/// The model as the options name it. `dtype` is fp32, bf16 or auto; `optimizer` is device,
/// host or auto; `attention` eager or fused (GPT-2 only). auto: AdamW stays on the device (fp32)
/// unless the smallest footprint of device-side training (everything but one block's activations
/// checkpointed) exceeds `smallest_budget` bytes; then it goes to the host, with bf16 weights when
/// `dtype` is auto and the device is not the host backend. ConfigError for bad values.
[[nodiscard]] ModelSpec parse_model(const WorkloadOptions& options, const DeviceSpec& device,
                                    std::size_t smallest_budget);

[[nodiscard]] std::unique_ptr<nn::Model> build_model(const ModelSpec& m, nn::Tape& tape,
                                                     std::uint64_t seed);

/// Bytes never evicted and all live at the update, below which no budget fits: the
/// parameters, plus on the device placement their fp32 gradients and AdamW's m and v (and
/// with bf16 weights the fp32 master copy).
[[nodiscard]] std::size_t persistent_bytes(const ModelSpec& m, std::size_t parameters);

/// Device bytes the trainer holds beyond the model's own (ChainShape::fixed_bytes), all
/// through the backward: on the device placement the fp32 gradients, m and v (and the bf16
/// weights' fp32 master copy); on the host
/// placement the largest fp32 gradient, which lives from its first contribution to its
/// last (GPT-2's tied embedding: the whole backward).
[[nodiscard]] double trainer_bytes(const ModelSpec& m, std::size_t parameters);

/// The device's memory capacity: the profile's on sim, else what the backend reports
/// (which starts it: threads on host, a context on cuda).
[[nodiscard]] std::size_t device_capacity(const DeviceSpec& device);

/// The rates the runtime's cost model and the budget-only path's planner use on this device,
/// and where they come from (the sim profile's datasheet figures, the host backend's link
/// throttle, or nothing measured yet: stand-ins).
[[nodiscard]] std::string describe_rates(const DeviceInfo& info);

/// One line on where the optimizer state lives, for the assumptions.
[[nodiscard]] std::string describe_optimizer(const ModelSpec& m, std::size_t parameters);

}  // namespace memento::cli
