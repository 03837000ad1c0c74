// The tape's hooks for what runs beside the backward: Plan::before_backward (it finds a
// block's activations by their tags and lets the plan restore or discard them as the
// backward reaches the block) and the grad-ready hook.
#include <climits>
#include <string_view>
#include <utility>

#include "memento/error.hpp"
#include "nn/tape.hpp"

namespace memento::nn {
namespace {

class TapeBlocks final : public BlockAccess {
 public:
  TapeBlocks(Runtime& rt, const std::unordered_map<TensorId, TensorTag>& tags)
      : rt_(rt), tags_(tags) {}

  bool input_resident(int block) const override {
    const TensorId id = input(block);
    return id == 0 || !rt_.tracks(id) || rt_.state(id) == Residency::resident;
  }

  void restore_input(int block) override {
    const TensorId id = input(block);
    if (id == 0 || !rt_.tracks(id)) return;
    (void)rt_.use(id);
    rt_.release(id);
  }

  void discard(int block, bool keep_input) override {
    for (const auto& [id, tag] : tags_) {
      if (tag.block != block || (keep_input && tag.role == "input") || !rt_.tracks(id)) continue;
      (void)rt_.evict_now(id, EvictAction::discard);  // 0 when pinned or not resident
    }
  }

 private:
  TensorId input(int block) const {
    for (const auto& [id, tag] : tags_)
      if (tag.block == block && tag.role == "input") return id;
    return 0;
  }

  Runtime& rt_;
  const std::unordered_map<TensorId, TensorTag>& tags_;
};

}  // namespace

void Tape::set_grad_ready_hook(GradReadyHook hook) {
  MEMENTO_EXPECTS(!hook || recorder_ == nullptr,
                  "set_grad_ready_hook: the tape is recording an operator log, which cannot "
                  "show gradients leaving the device; stop recording first");
  grad_ready_ = std::move(hook);
}

void Tape::enter_block(const std::vector<TensorId>& reads, int& current) {
  if (plan_ == nullptr) return;
  int lowest = INT_MAX;
  for (TensorId id : reads)
    if (auto t = tags_.find(id); t != tags_.end() && t->second.block >= 0)
      lowest = std::min(lowest, t->second.block);
  if (lowest >= current) return;
  current = lowest;
  TapeBlocks blocks(rt_, tags_);
  plan_->before_backward(lowest, blocks);
}

}  // namespace memento::nn
