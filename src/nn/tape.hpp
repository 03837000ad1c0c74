// Tape autograd over the runtime. The forward records each op; the activations its backward
// reads are the runtime's tracked tensors (the hook: like PyTorch's saved-tensor hooks, but
// in the runtime), so an evicted activation is brought back — copied back or recomputed —
// when the backward uses it. Parameters are tracked but never evicted; gradients live in
// plain allocator blocks (never evicted either).
#pragma once

#include <cstddef>
#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <span>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "memento/caching_allocator.hpp"
#include "memento/runtime.hpp"
#include "nn/ops/ops.hpp"
#include "nn/planning.hpp"

namespace memento::nn {

class TraceRecorder;

class Tape {
 public:
  Tape(Runtime& rt, CachingAllocator& allocator, Backend& backend);
  ~Tape();
  Tape(const Tape&) = delete;
  Tape& operator=(const Tape&) = delete;

  /// A parameter of `bytes` (never evicted). Its fp32 gradient buffer of `grad_bytes` is
  /// made at the first backward and kept (zeroed by zero_grads()).
  TensorId parameter(std::size_t bytes, std::size_t grad_bytes);
  /// An input of the step (tokens, targets, data): never evicted, no gradient. Freed by
  /// clear().
  TensorId input(std::size_t bytes);
  /// Copies host data into a parameter or input (stream-ordered; waits for the copy).
  void write(TensorId id, const void* host, std::size_t bytes);
  /// Reads a tensor back to the host (waits for the compute stream).
  void read(TensorId id, void* host, std::size_t bytes);

  /// Runs `op` on `inputs` into a new activation of `bytes` and records it for backward.
  TensorId apply(const OpPtr& op, const std::vector<TensorId>& inputs, std::size_t bytes,
                 RngState rng = {}, TensorTag tag = {});
  /// The static plan that decides, at release(), what happens to tagged activations the
  /// backward still needs (null: none, they stay). Not owned; must outlive the tape's use.
  void set_plan(const Plan* plan) noexcept { plan_ = plan; }
  /// The forward is done with `id`: it is freed at once if no backward reads it, else
  /// after the last backward that does. Activations never released go in clear().
  void release(TensorId id);

  /// Backward from `loss` (fp32 per-token losses), each seeded with `scale` (1/N gives the
  /// gradient of the mean). Parameter gradients accumulate; activations are freed as soon
  /// as no remaining backward reads them.
  void backward(TensorId loss, float scale);
  /// Frees every activation and input of the step; parameters stay.
  void clear();

  /// Called during backward() as soon as a parameter's gradient is complete (its last
  /// contribution launched on the compute stream), with the block, which the hook now owns
  /// and must deallocate (stream-ordered): the tape forgets it, so the next backward makes
  /// a fresh one. For optimizers that stream gradients off the device (ZeRO-Offload).
  using GradReadyHook = std::function<void(TensorId param, void* grad, std::size_t bytes)>;
  /// LogicError while recording (the operator log cannot show gradients leaving).
  void set_grad_ready_hook(GradReadyHook hook);

  /// The gradient buffer of a parameter (nullptr before the first backward, and after a
  /// grad-ready hook took it).
  [[nodiscard]] void* grad(TensorId param) const;
  void zero_grads();
  [[nodiscard]] const std::vector<TensorId>& parameters() const noexcept { return params_; }
  /// The bytes of a tensor the tape made (a parameter: its storage in the model's dtype).
  [[nodiscard]] std::size_t bytes(TensorId id) const { return bytes_.at(id); }
  [[nodiscard]] Runtime& runtime() noexcept { return rt_; }
  [[nodiscard]] Backend& backend() noexcept { return backend_; }
  [[nodiscard]] CachingAllocator& allocator() noexcept { return allocator_; }

  /// Reports what the tape does to `recorder` (an operator log, see trace_recorder.hpp)
  /// until set_recorder(nullptr); null (the default) records nothing and costs nothing.
  /// Set it between steps: it emits START and the parameters (and their gradient buffers,
  /// once made) as constants. Not owned.
  void set_recorder(TraceRecorder* recorder);
  [[nodiscard]] TraceRecorder* recorder() const noexcept { return recorder_; }
  /// For the optimizer; no-ops without a recorder. Device state `s` was just made and
  /// initialised by a kernel of cost `init` (none: zeroed by zero_kernel) that read `from`.
  void record_state(std::string_view name, Storage s, std::optional<KernelCost> init = {},
                    TensorId from = 0);
  /// An in-place update of `param` by a kernel of `cost` that read its gradient and updated
  /// the device `state` blocks too (null entries: none).
  void record_update(std::string_view name, TensorId param,
                     std::initializer_list<const void*> state, const KernelCost& cost);

 private:
  struct Node {
    OpPtr op;
    std::vector<TensorId> inputs;
    TensorId output;
    std::size_t bytes;
    RngState rng;
  };
  struct Grad {
    void* data = nullptr;
    std::size_t bytes = 0;
  };
  void* zeroed_block(std::size_t bytes);
  /// The plan's backward hook: before a node that reads activations of a block below
  /// `current`, tells the plan the backward reached that block (tape_blocks.cpp).
  void enter_block(const std::vector<TensorId>& reads, int& current);
  void drop_reader(TensorId id);
  /// Frees a live activation or an input: the runtime's memory and, recording, the log's.
  void free_tensor(TensorId id);
  void record_forward(const Node& node);
  /// Records a node's backward kernel: a call making the `fresh` gradients, a mutation of
  /// the others (accumulated into).
  void record_backward(const Node& node, std::span<const Storage> din,
                       const std::vector<bool>& fresh, const void* dout, const KernelCost& cost);

  Runtime& rt_;
  CachingAllocator& allocator_;
  Backend& backend_;
  std::vector<Node> nodes_;
  std::vector<TensorId> params_;
  std::unordered_map<TensorId, Grad> param_grads_;
  std::vector<TensorId> inputs_;
  std::unordered_map<TensorId, bool> requires_grad_;  // activations and parameters
  std::unordered_map<TensorId, int> readers_;         // backward reads still to come
  std::unordered_map<TensorId, bool> released_;       // the forward is done with it
  std::unordered_map<TensorId, bool> live_;           // activations not yet freed
  std::unordered_map<TensorId, std::size_t> bytes_;   // every tensor the tape made
  std::unordered_map<TensorId, TensorTag> tags_;
  const Plan* plan_ = nullptr;
  GradReadyHook grad_ready_;
  TraceRecorder* recorder_ = nullptr;
};

}  // namespace memento::nn
