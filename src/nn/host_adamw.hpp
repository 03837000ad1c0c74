// AdamW with its state and its step on the host, ZeRO-Offload style: the device keeps only
// the parameters (in the model's dtype) and the gradients still being accumulated. Each
// gradient is copied to pinned host memory as soon as the backward has finished it (in bf16
// with AdamWOptions::link_bf16) and its device block goes back at once; behind that copy a
// host task runs that parameter's update on the CPU (fp32 master weights, m and v; a small
// thread pool near the device) and the new parameter is copied back, all while the backward
// computes earlier layers. Three streams, chained by events, make that a pipeline: the
// gradient copies, the CPU steps and the uploads of different parameters overlap each
// other too. The next forward waits for the last upload.
#pragma once

#include <cstddef>
#include <memory>
#include <unordered_map>
#include <vector>

#include "memento/backend.hpp"
#include "nn/kernels/cpu/adamw_host.hpp"
#include "nn/kernels/cpu/thread_pool.hpp"
#include "nn/tape.hpp"
#include "nn/train.hpp"

namespace memento::nn {

class HostAdamW {
 public:
  HostAdamW(Tape& tape, const AdamWOptions& options);
  ~HostAdamW();
  HostAdamW(const HostAdamW&) = delete;
  HostAdamW& operator=(const HostAdamW&) = delete;

  /// Before the forward of AdamW step `t` (from 1); `apply` false: this step's gradients
  /// are taken off the device but update nothing (Trainer::step(false)).
  void begin_step(int t, bool apply);

  /// The tape's grad-ready hook: queues behind the compute stream's work the copy of `grad`
  /// (fp32, `bytes`) to the host, the parameter's CPU update and its upload, and gives the
  /// device block back (stream-ordered), also when it throws.
  void take(TensorId param, void* grad, std::size_t bytes);

  /// After the backward: the compute stream waits for the uploads (with host_overlap false,
  /// first queues every update and upload), and the host for the optimizer's stream, which
  /// reports a failed host task.
  void update(int t);

  /// Pinned host bytes held for gradients and parameter staging.
  [[nodiscard]] std::size_t host_bytes() const noexcept { return host_bytes_; }
  /// Threads of the CPU update (1 where the backend holds no data: sim runs no CPU code).
  [[nodiscard]] int threads() const noexcept { return pool_ ? pool_->threads() : 1; }

 private:
  /// fp32 master weights, m and v of one parameter: 3n floats on the device's NUMA node.
  struct State {
    float* data = nullptr;
    std::size_t bytes = 0;
  };
  struct Slot {
    std::size_t n = 0;            // elements
    std::size_t param_bytes = 0;  // the model's dtype
    std::size_t link_bytes = 0;   // the gradient as it crosses the link: fp32 or bf16
    void* grad_host = nullptr;    // pinned: the gradient
    void* param_host = nullptr;   // pinned: parameter download (first step) and upload
    State state;
    // The caller's thread only (the host tasks never touch these):
    bool downloaded = false;   // the parameter's first download is queued
    bool initialised = false;  // the first update (which initialises the state) is queued
    bool pending = false;      // host_overlap false: a gradient arrived, its update is not queued
  };
  void* pinned(std::size_t bytes);
  /// The parameter's slot, made (with its host buffers) at its first gradient.
  Slot& slot(TensorId param, std::size_t grad_bytes);
  /// The work on `from` so far comes before the next work on `to`.
  void order(Stream from, Stream to);
  /// With link_bf16: the gradient rounded to bf16 on the compute stream, in a new block.
  [[nodiscard]] void* round_gradient(Slot& s, void* grad);
  /// Queues the CPU update of `s` for step t (the first initialises the state from the
  /// downloaded parameter) and the parameter's upload.
  void queue_update(TensorId param, Slot& s, int t);
  void release(Slot& s) noexcept;

  Tape& tape_;
  Backend& backend_;
  AdamWOptions options_;
  Stream d2h_;   // gradient (and first parameter) downloads, bf16 rounding
  Stream cpu_;   // the CPU steps (host tasks)
  Stream h2d_;   // parameter uploads
  Event event_;  // re-recorded for each ordering: wait() takes the capture of its call

  std::unique_ptr<cpu::ThreadPool> pool_;  // where the backend holds data
  std::unordered_map<TensorId, Slot> slots_;
  std::vector<TensorId> order_;  // parameters in first-arrival order (deterministic)
  std::size_t host_bytes_ = 0;
  int t_ = 1;
  bool apply_ = true;
};

}  // namespace memento::nn
