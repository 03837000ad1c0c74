#include "nn/train.hpp"

#include <chrono>
#include <cmath>
#include <limits>

#include "memento/error.hpp"
#include "nn/host_adamw.hpp"
#include "nn/kernels/cpu/kernels_cpu.hpp"

#if MEMENTO_HAS_CUDA
#include "nn/kernels/cuda/kernels_cuda.hpp"
#endif

namespace memento::nn {

Trainer::Trainer(Tape& tape, Model& model, AdamWOptions options)
    : tape_(tape), model_(model), options_(options) {
  if (options_.placement == OptimizerPlacement::host) {
    host_ = std::make_unique<HostAdamW>(tape_, options_);
    tape_.set_grad_ready_hook([h = host_.get()](TensorId param, void* grad, std::size_t bytes) {
      h->take(param, grad, bytes);
    });
  }
}

Trainer::~Trainer() {
  tape_.set_grad_ready_hook(nullptr);
  try {
    tape_.backend().synchronize(tape_.runtime().compute_stream());
    for (State& s : state_) {
      if (s.m != nullptr) tape_.allocator().deallocate(s.m);
      if (s.v != nullptr) tape_.allocator().deallocate(s.v);
      if (s.master != nullptr) tape_.allocator().deallocate(s.master);
    }
  } catch (const std::exception&) {
    // Teardown: the allocator reports leaks when it goes.
  }
}

StepReport Trainer::step(bool update) {
  Runtime& rt = tape_.runtime();
  const auto start = std::chrono::steady_clock::now();
  StepReport r;
  rt.begin_step();
  try {
    tape_.zero_grads();
    if (host_) host_->begin_step(static_cast<int>(step_) + 1, update);
    TensorId losses = model_.forward(tape_, step_);
    const std::size_t n = model_.loss_count();
    r.loss = std::numeric_limits<double>::quiet_NaN();
    if (tape_.backend().info().executes_kernels) {  // else no loss was computed
      std::vector<float> host(n);
      tape_.read(losses, host.data(), n * sizeof(float));
      double sum = 0;
      for (float l : host) sum += l;  // in order: the same mean every run
      r.loss = sum / static_cast<double>(n);
    }
    tape_.backward(losses, 1.0f / static_cast<float>(n));
    if (update && host_) {
      const double adamw_start = tape_.backend().now();
      host_->update(static_cast<int>(step_) + 1);
      rt.trace_host_span("host adamw", "optimizer", "host optimizer", adamw_start);
    } else if (update) {
      adamw();
    }
    tape_.clear();
  } catch (...) {
    tape_.clear();
    (void)rt.end_step();
    throw;
  }
  r.stats = rt.end_step();
  r.wall_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ++step_;
  return r;
}

void Trainer::adamw() {
  const std::vector<TensorId>& params = tape_.parameters();
  Stream s = tape_.runtime().compute_stream();
  if (state_.size() < params.size()) state_.resize(params.size());
  const int t = static_cast<int>(step_) + 1;
  for (std::size_t i = 0; i < params.size(); ++i) {
    void* grad = tape_.grad(params[i]);
    if (grad == nullptr) continue;  // no gradient reached it
    State& st = state_[i];
    if (st.m == nullptr) {
      st.bytes = 0;
      // The gradient buffer's size is the fp32 size of the parameter.
      st.bytes = tape_.allocator().requested_size(grad);
      st.m = tape_.allocator().allocate(st.bytes, s);
      st.v = tape_.allocator().allocate(st.bytes, s);
      tape_.runtime().launch(s, zero_kernel({st.m, st.bytes}), {KernelPhase::optimizer});
      tape_.runtime().launch(s, zero_kernel({st.v, st.bytes}), {KernelPhase::optimizer});
      tape_.record_state("adamw state", {st.m, st.bytes});  // no-ops unless recording
      tape_.record_state("adamw state", {st.v, st.bytes});
    }
    const std::size_t n = st.bytes / sizeof(float);
    const bool bf16 = tape_.bytes(params[i]) == n * dtype_bytes(DType::bf16) && n > 0;
    // Mixed precision: the tape's parameter is the bf16 forward copy; AdamW updates an fp32
    // master copy, initialised (exactly) from it at the first update, and rewrites the bf16
    // copy from it. The sim models the copy too (its memory and its init kernel), so that its
    // budgets and peaks are the cuda run's.
    const bool init_master = bf16 && st.master == nullptr && tape_.backend().info().supports_bf16;
    if (init_master) st.master = tape_.allocator().allocate(st.bytes, s);
    void* p = tape_.runtime().use(params[i]);
    if (init_master) {
      Kernel init;
      init.name = "adamw master init";
      init.cost = {0, 6.0 * static_cast<double>(n), false};
#if MEMENTO_HAS_CUDA
      init.cuda = [master = st.master, p, n](void* stream) {
        cuda::bf16_to_f32(static_cast<float*>(master), static_cast<const cuda::bf16*>(p), n,
                          stream);
      };
#endif
      tape_.record_state("adamw master init", {st.master, st.bytes}, init.cost, params[i]);
      tape_.runtime().launch(s, std::move(init), {KernelPhase::optimizer});
    }
    Kernel k;
    k.name = "adamw";
    k.cost = {12.0 * static_cast<double>(n), 20.0 * static_cast<double>(n), false};
    if (!bf16) {
      k.host = [p, grad, m = st.m, v = st.v, n, o = options_, t] {
        cpu::adamw_update(static_cast<float*>(p), static_cast<const float*>(grad),
                          static_cast<float*>(m), static_cast<float*>(v), n, o.lr, o.beta1, o.beta2,
                          o.eps, o.weight_decay, t);
      };
    } else {
      k.host = [] {
        MEMENTO_FAIL(LogicError, "adamw: bf16 parameters need the cuda or sim backend");
      };
    }
#if MEMENTO_HAS_CUDA
    // fp32: the parameters are the master weights. bf16: update the master copy and write the
    // parameter (the forward copy) from it.
    k.cuda = [p, grad, m = st.m, v = st.v, master = st.master, bf16, n, o = options_,
              t](void* stream) {
      auto* g = static_cast<const float*>(grad);
      auto* mf = static_cast<float*>(m);
      auto* vf = static_cast<float*>(v);
      if (bf16) {
        cuda::adamw_step<cuda::bf16>(static_cast<float*>(master), static_cast<cuda::bf16*>(p), g,
                                     mf, vf, n, o.lr, o.beta1, o.beta2, o.eps, o.weight_decay, t,
                                     stream);
      } else {
        cuda::adamw_step<float>(static_cast<float*>(p), nullptr, g, mf, vf, n, o.lr, o.beta1,
                                o.beta2, o.eps, o.weight_decay, t, stream);
      }
    };
#endif
    tape_.record_update("adamw", params[i], {st.m, st.v, st.master}, k.cost);
    tape_.runtime().launch(s, std::move(k), {KernelPhase::optimizer});
    tape_.runtime().release(params[i]);
  }
}

}  // namespace memento::nn
