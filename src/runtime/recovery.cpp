// After an asynchronous backend failure: which tensors the failed work may have written is
// unknown (the backend reports a stream, not a copy), so everything the runtime's own queued
// work produced or moved since the last clean synchronization is suspect. A suspect with a
// recipe is discarded and comes back bit-identical by recompute; one without is lost, and
// named. Nothing is silently wrong: either the data is recomputed or using it raises.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <utility>

#include "common/log.hpp"
#include "memento/error.hpp"
#include "memento/runtime.hpp"
#include "runtime/tensor_registry.hpp"

namespace memento {

void Runtime::note_unverified(TensorId id) {
  unverified_.push_back(id);
  // Without steps nothing clears the list: keep it to the tensors still tracked.
  if (unverified_.size() > 2 * registry_->size() + 1024) {
    std::sort(unverified_.begin(), unverified_.end());
    unverified_.erase(std::unique(unverified_.begin(), unverified_.end()), unverified_.end());
    std::erase_if(unverified_, [this](TensorId t) { return !registry_->contains(t); });
  }
}

std::string Runtime::recover_from_async_error() {
  std::lock_guard lock(mutex_);
  return recover_locked();
}

bool Runtime::lost(TensorId id) const {
  std::lock_guard lock(mutex_);
  return !registry_->at(id).lost.empty();
}

void Runtime::rethrow_recovered(const AsyncBackendError& e) {
  std::string report;
  try {
    report = recover_locked();
  } catch (const std::exception& again) {
    report = fmt::format("recovery failed too: {}", again.what());
  }
  // A plain BackendError: recovery is done, so callers further up do not repeat it.
  MEMENTO_FAIL(BackendError, fmt::format("{}; {}", e.what(), report));
}

std::string Runtime::recover_locked() {
  // Let the queued work finish, collecting what else failed. A backend whose failures
  // persist (a sticky device error) is not usable; the tensors are judged all the same.
  std::string also;
  for (int tries = 0; tries < 8; ++tries) {
    try {
      backend_.synchronize_all();
      break;
    } catch (const AsyncBackendError& e) {
      also += fmt::format("; then: {}", e.what());
    } catch (const BackendError& e) {
      also += fmt::format("; then: {}", e.what());
      break;
    }
  }
  std::sort(unverified_.begin(), unverified_.end());
  unverified_.erase(std::unique(unverified_.begin(), unverified_.end()), unverified_.end());
  std::vector<TensorId> recomputed;
  std::vector<TensorId> lost;
  for (TensorId id : unverified_) {
    if (!registry_->contains(id)) continue;
    TrackedTensor& t = registry_->at(id);
    // Copies still tracked as in flight have run (or failed) by now.
    if (auto copy = prefetches_.find(id); copy != prefetches_.end()) {
      backend_.destroy_event(copy->second.done);
      prefetches_.erase(copy);
      registry_->move(id, Residency::resident);
    }
    if (auto copy = offloads_.find(id); copy != offloads_.end()) {
      backend_.destroy_event(copy->second.done);
      offloads_.erase(copy);
      registry_->move(id, Residency::on_host);
    }
    if (t.state == Residency::discarded || !t.lost.empty()) continue;
    const bool can_discard = t.desc.recipe.has_value() && t.desc.evictable && t.pins == 0;
    if (!can_discard) {
      t.lost = t.pins > 0 ? "it was in use when queued work that wrote it failed"
                          : "the copy that held its only bytes may have failed, and it has "
                            "no recipe to recompute it from";
      lost.push_back(id);
      continue;
    }
    void* device = std::exchange(t.device, nullptr);
    void* host = std::exchange(t.host, nullptr);
    registry_->move(id, Residency::discarded);
    recomputed.push_back(id);
    // A free that raises has still freed (see CachingAllocator and PinnedHostPool): note
    // the error and go on, so that every suspect is judged.
    try {
      if (device != nullptr) allocator_.deallocate(device);
    } catch (const Error& e) {
      also += fmt::format("; then: {}", e.what());
    }
    try {
      if (host != nullptr) host_pool_->deallocate(host, d2h_);
    } catch (const Error& e) {
      also += fmt::format("; then: {}", e.what());
    }
  }
  unverified_.clear();
  std::string report = fmt::format(
      "memento recovered: {} tensor(s) produced or moved since the last synchronization "
      "will be recomputed on use",
      recomputed.size());
  if (!lost.empty())
    report +=
        fmt::format("; lost (using them raises DataLost): tensor(s) {}", fmt::join(lost, ", "));
  report += also;
  log::warning(report);
  trace_memory();
  return report;
}

}  // namespace memento
