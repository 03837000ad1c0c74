// The training loop: AdamW over a model's parameters, one step at a time, with the loss,
// the runtime's step stats (peak memory, evictions, time) and the wall time of each step.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "memento/runtime.hpp"
#include "nn/models/model.hpp"
#include "nn/tape.hpp"

namespace memento::nn {

/// Where AdamW keeps its state and runs its step.
enum class OptimizerPlacement {
  device,  ///< m, v (and bf16's fp32 master weights) and the gradients on the device
  host,    ///< ZeRO-Offload style: see HostAdamW
};

struct AdamWOptions {
  float lr = 1e-3f;
  float beta1 = 0.9f;
  float beta2 = 0.95f;
  float eps = 1e-8f;
  float weight_decay = 0.0f;
  OptimizerPlacement placement = OptimizerPlacement::device;
  /// Host placement on sim: the CPU step is modelled as its memory traffic (about 30 bytes
  /// per parameter) at this rate, bytes/s. Real backends measure it.
  double host_update_bandwidth = 40e9;
  /// Host placement: threads of the CPU step (0: std::thread::hardware_concurrency()).
  /// Results do not depend on it.
  int host_threads = 0;
  /// Host placement: each parameter's CPU step runs as soon as its gradient is on the host,
  /// while the backward goes on (false: all of them after the backward, as a baseline).
  /// Results do not depend on it.
  bool host_overlap = true;
  /// Host placement: gradients cross the link in bf16 (rounded to nearest even on the
  /// device), half the bytes of fp32. Changes the numerics: the update sees rounded
  /// gradients, so it no longer equals the device placement's bit for bit.
  bool link_bf16 = false;
};

class HostAdamW;

struct StepReport {
  double loss = 0;  ///< mean loss of the step (NaN on sim, which computes nothing)
  StepStats stats;  ///< from the runtime: peaks, evictions, backend-clock seconds
  double wall_seconds = 0;
};

class Trainer {
 public:
  Trainer(Tape& tape, Model& model, AdamWOptions options = {});
  ~Trainer();
  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;

  /// One step: forward, backward, AdamW update. With `update` false the parameters are not
  /// changed and the gradients are left in the tape for inspection (device placement only:
  /// host placement streams them off the device during the backward).
  StepReport step(bool update = true);
  [[nodiscard]] std::uint64_t steps_done() const noexcept { return step_; }

 private:
  void adamw();

  Tape& tape_;
  Model& model_;
  AdamWOptions options_;
  std::uint64_t step_ = 0;
  struct State {
    void* m = nullptr;
    void* v = nullptr;
    void* master = nullptr;  // fp32 master weights of a bf16 parameter (cuda and sim)
    std::size_t bytes = 0;
  };
  std::vector<State> state_;         // by parameter index, made at the first update
  std::unique_ptr<HostAdamW> host_;  // host placement
};

}  // namespace memento::nn
