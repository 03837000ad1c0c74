#include "nn/tape.hpp"

#include <fmt/format.h>

#include <array>
#include <climits>
#include <unordered_set>
#include <utility>

#include "memento/error.hpp"
#include "nn/trace_recorder.hpp"

namespace memento::nn {

Tape::Tape(Runtime& rt, CachingAllocator& allocator, Backend& backend)
    : rt_(rt), allocator_(allocator), backend_(backend) {}

Tape::~Tape() {
  recorder_ = nullptr;  // teardown is not part of any step
  try {
    clear();
    backend_.synchronize(rt_.compute_stream());
    for (auto& [id, g] : param_grads_)
      if (g.data != nullptr) allocator_.deallocate(g.data);
    for (TensorId p : params_) rt_.free(p);
  } catch (const std::exception&) {
    // Teardown: the runtime returns what is left when it goes.
  }
}

TensorId Tape::parameter(std::size_t bytes, std::size_t grad_bytes) {
  TensorId id = rt_.constant(bytes);
  bytes_[id] = bytes;
  params_.push_back(id);
  param_grads_[id] = Grad{nullptr, grad_bytes};
  requires_grad_[id] = true;
  if (recorder_ != nullptr) recorder_->constant(TraceRef::of(id), bytes);
  return id;
}

TensorId Tape::input(std::size_t bytes) {
  TensorId id = rt_.constant(bytes);
  bytes_[id] = bytes;
  inputs_.push_back(id);
  if (recorder_ != nullptr) recorder_->constant(TraceRef::of(id), bytes);
  return id;
}

void Tape::write(TensorId id, const void* host, std::size_t bytes) {
  void* dev = rt_.use(id);
  backend_.copy_async(dev, host, bytes, CopyKind::host_to_device, rt_.compute_stream());
  backend_.synchronize(rt_.compute_stream());
  rt_.release(id);
}

void Tape::read(TensorId id, void* host, std::size_t bytes) {
  void* dev = rt_.use(id);
  backend_.copy_async(host, dev, bytes, CopyKind::device_to_host, rt_.compute_stream());
  backend_.synchronize(rt_.compute_stream());
  rt_.release(id);
}

TensorId Tape::apply(const OpPtr& op, const std::vector<TensorId>& inputs, std::size_t bytes,
                     RngState rng, TensorTag tag) {
  TensorId out = rt_.compute(op, inputs, bytes, rng);
  bytes_[out] = bytes;
  bool grad = false;
  for (TensorId in : inputs) grad = grad || requires_grad_.count(in) > 0;
  if (grad) {
    requires_grad_[out] = true;
    // Counted now; a node whose backward never runs gives its reads back then.
    for (std::size_t i = 0; i < inputs.size(); ++i)
      if (op->backward_reads_input(i)) ++readers_[inputs[i]];
    if (op->backward_reads_output()) ++readers_[out];
  }
  live_[out] = true;
  if (tag.block >= 0 || !tag.role.empty()) {  // {-1, "logits"} too
    tags_[out] = tag;
    rt_.mark(out, tag.block, tag.role);  // for the budget-only path's plan candidates
  }
  nodes_.push_back(Node{op, inputs, out, bytes, rng});
  if (recorder_ != nullptr) record_forward(nodes_.back());
  return out;
}

void Tape::release(TensorId id) {
  if (!live_.count(id)) return;  // a parameter, an input, or freed already
  released_[id] = true;
  if (readers_[id] == 0) {
    free_tensor(id);
    return;
  }
  // Saved for the backward: the plan says whether it stays until then.
  auto tag = tags_.find(id);
  if (plan_ == nullptr || tag == tags_.end()) return;
  switch (plan_->at_release(tag->second)) {
    case PlanAction::keep:
      break;
    case PlanAction::discard:
      (void)rt_.evict_now(id, EvictAction::discard);
      break;
    case PlanAction::offload:
      (void)rt_.evict_now(id, EvictAction::offload);
      break;
  }
}

void Tape::drop_reader(TensorId id) {
  auto it = readers_.find(id);
  if (it == readers_.end() || it->second == 0) return;
  if (--it->second == 0 && released_[id] && live_.count(id)) free_tensor(id);
}

void Tape::free_tensor(TensorId id) {
  rt_.free(id);
  live_.erase(id);
  if (recorder_ != nullptr) recorder_->release(TraceRef::of(id));
}

void* Tape::zeroed_block(std::size_t bytes) {
  void* p = allocator_.allocate(bytes, rt_.compute_stream());
  Kernel zero = zero_kernel({p, bytes});
  // Recorded as part of the backward call that accumulates into it.
  if (recorder_ != nullptr) recorder_->charge(zero.cost);
  rt_.launch(rt_.compute_stream(), std::move(zero), {KernelPhase::backward});
  return p;
}

void Tape::backward(TensorId loss, float scale) {
  MEMENTO_EXPECTS(live_.count(loss),
                  fmt::format("backward: tensor {} is not a live activation", loss));
  std::unordered_map<TensorId, Grad> grads;
  std::vector<void*> scratch;
  // On an error (OutOfMemory, say) the gradient blocks made so far go back.
  struct Cleanup {
    CachingAllocator& a;
    std::unordered_map<TensorId, Grad>& g;
    std::vector<void*>& s;
    TraceRecorder* rec;
    ~Cleanup() {
      for (auto& [id, gr] : g) free(gr.data);
      for (void* p : s) free(p);
    }
    void free(void* p) {
      a.deallocate(p);
      try {
        if (rec != nullptr) rec->release(TraceRef::of(p));
      } catch (const std::exception&) {
        // The log is broken by the error that brought us here anyway.
      }
    }
  } cleanup{allocator_, grads, scratch, recorder_};
  const Stream s = rt_.compute_stream();
  const std::size_t loss_bytes = bytes_.at(loss);
  Grad seed{allocator_.allocate(loss_bytes, s), loss_bytes};
  Kernel fill = fill_kernel({seed.data, seed.bytes}, scale);
  if (recorder_ != nullptr) {
    recorder_->backward();
    const TraceResult result{TraceRef::of(seed.data), loss_bytes, 'g'};
    recorder_->call("fill", {}, {&result, 1}, fill.cost);
  }
  rt_.launch(s, std::move(fill), {KernelPhase::backward});
  grads[loss] = seed;
  // The forward is over: what no backward reads goes now.
  std::vector<TensorId> unread;
  for (auto& [id, alive] : live_) {
    released_[id] = true;
    if (readers_[id] == 0 && id != loss) unread.push_back(id);
  }
  for (TensorId id : unread) free_tensor(id);

  // With a grad-ready hook: the node (by forward index) after whose backward each
  // parameter's gradient is complete, the first in forward order that feeds it.
  std::vector<std::vector<TensorId>> completes(grad_ready_ ? nodes_.size() : 0);
  if (grad_ready_) {
    std::unordered_set<TensorId> seen;
    for (std::size_t k = 0; k < nodes_.size(); ++k) {
      const std::vector<bool> mask = nodes_[k].op->grad_inputs();
      for (std::size_t i = 0; i < nodes_[k].inputs.size(); ++i) {
        const TensorId id = nodes_[k].inputs[i];
        if (mask[i] && param_grads_.count(id) && seen.insert(id).second) completes[k].push_back(id);
      }
    }
  }
  const auto hand_over = [&](std::size_t k) {
    if (!grad_ready_) return;
    for (TensorId id : completes[k]) {
      Grad& pg = param_grads_.at(id);
      if (pg.data == nullptr) continue;  // no gradient reached it
      void* data = std::exchange(pg.data, nullptr);
      grad_ready_(id, data, pg.bytes);
    }
  };

  int block = INT_MAX;  // the lowest block whose activations the backward has read
  for (auto node = nodes_.rbegin(); node != nodes_.rend(); ++node) {
    const NnOp& op = *node->op;
    const auto k = static_cast<std::size_t>(nodes_.rend() - node - 1);
    auto reads = [&](auto&& fn) {
      for (std::size_t i = 0; i < node->inputs.size(); ++i)
        if (op.backward_reads_input(i)) fn(node->inputs[i]);
      if (op.backward_reads_output()) fn(node->output);
    };
    if (plan_ != nullptr) {
      std::vector<TensorId> read;
      reads([&](TensorId id) { read.push_back(id); });
      enter_block(read, block);
    }
    auto g = grads.find(node->output);
    if (g == grads.end() || !requires_grad_.count(node->output)) {
      reads([&](TensorId id) { drop_reader(id); });
      hand_over(k);
      continue;
    }
    // Gradient buffers first (allocating may evict), then pin what the backward reads.
    const std::vector<bool> mask = op.grad_inputs();
    std::vector<Storage> din(node->inputs.size());
    std::vector<bool> fresh(node->inputs.size());  // a new buffer, not an accumulation
    scratch.clear();
    for (std::size_t i = 0; i < node->inputs.size(); ++i) {
      if (!mask[i]) continue;
      TensorId id = node->inputs[i];
      const std::size_t bytes = bytes_.at(id);
      if (auto p = param_grads_.find(id); p != param_grads_.end()) {
        fresh[i] = p->second.data == nullptr;
        if (fresh[i]) p->second.data = zeroed_block(p->second.bytes);
        din[i] = {p->second.data, p->second.bytes};
      } else if (requires_grad_.count(id)) {
        auto& dg = grads[id];
        fresh[i] = dg.data == nullptr;
        if (fresh[i]) dg = Grad{zeroed_block(bytes), bytes};
        din[i] = {dg.data, dg.bytes};
      } else {
        fresh[i] = true;
        scratch.push_back(zeroed_block(bytes));
        din[i] = {scratch.back(), bytes};
      }
    }
    std::vector<Storage> in(node->inputs.size());
    std::vector<TensorId> pinned;
    Storage out{};
    try {
      for (std::size_t i = 0; i < node->inputs.size(); ++i) {
        if (!op.backward_reads_input(i)) continue;
        in[i] = {rt_.use(node->inputs[i]), bytes_.at(node->inputs[i])};
        pinned.push_back(node->inputs[i]);
      }
      if (op.backward_reads_output()) {
        out = {rt_.use(node->output), node->bytes};
        pinned.push_back(node->output);
      }
      Kernel bk = op.make_backward(in, out, {g->second.data, g->second.bytes}, din, node->rng);
      if (recorder_ != nullptr) record_backward(*node, din, fresh, g->second.data, bk.cost);
      const std::string op_name = rt_.tracing() ? op.name() : std::string();
      rt_.launch(s, std::move(bk), {KernelPhase::backward, op_name});
    } catch (...) {
      for (TensorId id : pinned) rt_.release(id);
      throw;
    }
    for (TensorId id : pinned) rt_.release(id);
    cleanup.free(g->second.data);  // stream-ordered: after the kernel read it
    grads.erase(g);
    for (void* p : scratch) cleanup.free(p);
    scratch.clear();
    reads([&](TensorId id) { drop_reader(id); });
    hand_over(k);
  }
  // Gradients of leaves (inputs that needed none): the cleanup returns them.
  if (live_.count(loss) && readers_[loss] == 0) free_tensor(loss);
}

void Tape::clear() {
  for (auto& [id, alive] : live_) {
    rt_.free(id);
    if (recorder_ != nullptr) recorder_->release(TraceRef::of(id));
  }
  live_.clear();
  for (TensorId id : inputs_) {
    rt_.free(id);
    if (recorder_ != nullptr) recorder_->release(TraceRef::of(id));
  }
  inputs_.clear();
  nodes_.clear();
  readers_.clear();
  tags_.clear();
  for (auto it = bytes_.begin(); it != bytes_.end();)
    it = param_grads_.count(it->first) ? std::next(it) : bytes_.erase(it);
  released_.clear();
  for (auto it = requires_grad_.begin(); it != requires_grad_.end();)
    it = param_grads_.count(it->first) ? std::next(it) : requires_grad_.erase(it);
}

void* Tape::grad(TensorId param) const {
  auto it = param_grads_.find(param);
  return it == param_grads_.end() ? nullptr : it->second.data;
}

void Tape::zero_grads() {
  for (auto& [id, g] : param_grads_) {
    if (g.data == nullptr) continue;
    Kernel zero = zero_kernel({g.data, g.bytes});
    if (recorder_ != nullptr) {
      const TraceRef ref = TraceRef::of(g.data);
      recorder_->mutate("zero", {&ref, 1}, std::array<std::size_t, 1>{0}, zero.cost);
    }
    // Parameter gradients are the backward's: their zeroing is traced as part of it.
    rt_.launch(rt_.compute_stream(), std::move(zero), {KernelPhase::backward});
  }
}

}  // namespace memento::nn
