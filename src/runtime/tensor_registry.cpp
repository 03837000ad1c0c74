#include "runtime/tensor_registry.hpp"

#include <fmt/format.h>

#include "memento/error.hpp"

namespace memento {
namespace {
// States in which a tensor holds a device block the runtime counts as its own.
bool holds_device(Residency s) noexcept {
  return s == Residency::resident || s == Residency::prefetching;
}
}  // namespace

TensorId TensorRegistry::add(TensorDesc desc, void* device) {
  MEMENTO_EXPECTS(desc.bytes > 0, "cannot track a tensor of 0 bytes");
  if (desc.recipe) {
    MEMENTO_EXPECTS(desc.recipe->op != nullptr, "a recipe needs an op");
    for (TensorId input : desc.recipe->inputs)
      MEMENTO_EXPECTS(contains(input),
                      fmt::format("recipe of {} names tensor {}, which is not registered",
                                  desc.recipe->op->name(), input));
    for (TensorId input : desc.recipe->inputs) ++recipe_uses_[input];
  }
  TensorId id = next_id_++;
  TrackedTensor t;
  t.id = id;
  t.desc = std::move(desc);
  t.device = device;
  t.last_access = ++clock_;
  device_bytes_ += t.desc.bytes;  // registered resident
  tensors_.emplace(id, std::move(t));
  return id;
}

bool TensorRegistry::contains(TensorId id) const noexcept { return tensors_.count(id) != 0; }

TrackedTensor& TensorRegistry::at(TensorId id) {
  auto it = tensors_.find(id);
  MEMENTO_EXPECTS(it != tensors_.end(), fmt::format("unknown tensor {}", id));
  return it->second;
}

const TrackedTensor& TensorRegistry::at(TensorId id) const {
  auto it = tensors_.find(id);
  MEMENTO_EXPECTS(it != tensors_.end(), fmt::format("unknown tensor {}", id));
  return it->second;
}

void TensorRegistry::erase(TensorId id) {
  const TrackedTensor& t = at(id);
  MEMENTO_EXPECTS(t.pins == 0, fmt::format("tensor {} is still in use ({} pins)", id, t.pins));
  auto uses = recipe_uses_.find(id);
  MEMENTO_EXPECTS(uses == recipe_uses_.end() || uses->second == 0,
                  fmt::format("tensor {} is an input of {} recipe(s) of live tensors", id,
                              uses == recipe_uses_.end() ? 0 : uses->second));
  if (t.desc.recipe)
    for (TensorId input : t.desc.recipe->inputs) --recipe_uses_[input];
  recipe_uses_.erase(id);
  if (holds_device(t.state)) device_bytes_ -= t.desc.bytes;
  tensors_.erase(id);
}

void TensorRegistry::forget_recipe(TensorId id) {
  TrackedTensor& t = at(id);
  if (!t.desc.recipe) return;
  MEMENTO_EXPECTS(t.state != Residency::discarded && t.state != Residency::recomputing,
                  fmt::format("tensor {} is {}: without its recipe its data would be lost", id,
                              to_string(t.state)));
  for (TensorId input : t.desc.recipe->inputs) --recipe_uses_[input];
  t.desc.recipe.reset();
}

void TensorRegistry::move(TensorId id, Residency to) {
  TrackedTensor& t = at(id);
  check_transition(id, t.state, to);
  if (t.state == Residency::resident) {  // an eviction
    MEMENTO_EXPECTS(t.desc.evictable, fmt::format("tensor {} is not evictable", id));
    MEMENTO_EXPECTS(t.pins == 0,
                    fmt::format("tensor {} is in use ({} pins) and cannot be evicted", id, t.pins));
  }
  MEMENTO_EXPECTS(to != Residency::discarded || t.desc.recipe.has_value(),
                  fmt::format("tensor {} has no recipe and cannot be discarded", id));
  if (holds_device(to) && !holds_device(t.state)) device_bytes_ += t.desc.bytes;
  if (!holds_device(to) && holds_device(t.state)) device_bytes_ -= t.desc.bytes;
  t.state = to;
}

void TensorRegistry::pin(TensorId id) { ++at(id).pins; }

void TensorRegistry::unpin(TensorId id) {
  TrackedTensor& t = at(id);
  MEMENTO_EXPECTS(t.pins > 0, fmt::format("tensor {} released more often than used", id));
  --t.pins;
}

std::uint64_t TensorRegistry::touch(TensorId id) { return at(id).last_access = ++clock_; }

std::vector<TrackedTensor*> TensorRegistry::all() {
  std::vector<TrackedTensor*> out;
  out.reserve(tensors_.size());
  for (auto& [id, t] : tensors_) out.push_back(&t);
  return out;
}

std::vector<const TrackedTensor*> TensorRegistry::eviction_candidates() const {
  std::vector<const TrackedTensor*> out;
  for (const auto& [id, t] : tensors_)
    if ((t.state == Residency::resident || t.state == Residency::prefetching) && t.pins == 0 &&
        t.desc.evictable)
      out.push_back(&t);
  return out;
}

std::size_t TensorRegistry::bytes_in(Residency state) const noexcept {
  std::size_t n = 0;
  for (const auto& [id, t] : tensors_)
    if (t.state == state) n += t.desc.bytes;
  return n;
}

}  // namespace memento
