// AdamW with its state and its step on the host, ZeRO-Offload style: the device keeps only
// the parameters (in the model's dtype) and the gradients still being accumulated. Each
// gradient is copied to pinned host memory as soon as the backward has finished it and its
// device block goes back at once; after the backward the CPU updates fp32 master weights,
// m and v, and the new parameters are copied back before the next step's forward.
#pragma once

#include <cstddef>
#include <unordered_map>
#include <vector>

#include "memento/backend.hpp"
#include "nn/tape.hpp"
#include "nn/train.hpp"

namespace memento::nn {

class HostAdamW {
 public:
  HostAdamW(Tape& tape, const AdamWOptions& options);
  ~HostAdamW();
  HostAdamW(const HostAdamW&) = delete;
  HostAdamW& operator=(const HostAdamW&) = delete;

  /// Forgets the gradients of a step that was not applied (Trainer::step(false)).
  void begin_step();

  /// The tape's grad-ready hook: queues the copy of `grad` (fp32, `bytes`) to the host
  /// behind the compute stream's work and gives the device block back (stream-ordered),
  /// also when it throws.
  void take(TensorId param, void* grad, std::size_t bytes);

  /// After the backward: waits for the gradients, runs AdamW step `t` on the CPU (on sim,
  /// accounts its modelled time instead) and copies the parameters back; the compute
  /// stream waits for those copies.
  void update(int t);

  /// Pinned host bytes held for gradients and parameter staging.
  [[nodiscard]] std::size_t host_bytes() const noexcept { return host_bytes_; }

 private:
  struct Slot {
    std::size_t grad_bytes = 0;   // fp32
    std::size_t param_bytes = 0;  // the model's dtype
    void* grad_host = nullptr;    // pinned: the gradient
    void* param_host = nullptr;   // pinned: parameter download (first step) and upload
    std::vector<float> master, m, v;
    bool pending = false;  // a gradient arrived since the last update
    bool initialised = false;
  };
  void* pinned(std::size_t bytes);
  /// The parameter's slot, made (with its pinned buffers) at its first gradient.
  Slot& slot(TensorId param, std::size_t grad_bytes);
  /// The compute stream's work so far comes before the next copies on stream_.
  void after_compute();
  void cpu_step(TensorId param, Slot& slot, int t);

  Tape& tape_;
  Backend& backend_;
  AdamWOptions options_;
  Stream stream_;
  Event event_;
  std::unordered_map<TensorId, Slot> slots_;
  std::vector<TensorId> order_;  // parameters in first-arrival order (deterministic)
  std::size_t host_bytes_ = 0;
};

}  // namespace memento::nn
