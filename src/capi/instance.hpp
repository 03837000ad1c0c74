// What the C API's files share: the process-wide instance (backend, caching allocator,
// pinned host pool, the planning API's state) and the guard that turns exceptions into the
// thread's last error. memento_c.cpp owns the instance; plan_api.cpp uses it.
#pragma once

#include <fmt/format.h>

#include <cstddef>
#include <exception>
#include <memory>
#include <string>

#include "common/log.hpp"
#include "memento/backend.hpp"
#include "memento/caching_allocator.hpp"
#include "memento/pinned_host_pool.hpp"

namespace memento::capi {

/// The planning API's state (plan_state.hpp).
class PlanState;

/// Made by make_plan_state() from plan_api.cpp; destroyed with the instance.
[[nodiscard]] std::unique_ptr<PlanState, void (*)(PlanState*)> make_plan_state(
    Backend& backend, CachingAllocator& allocator, PinnedHostPool& host_pool);

/// Members are destroyed in reverse order: the plan state (which returns its pinned buffers
/// and events) before the pool, the pool before the allocator, the allocator before the
/// backend.
struct Instance {
  std::unique_ptr<Backend> backend;
  std::unique_ptr<CachingAllocator> allocator;
  std::unique_ptr<PinnedHostPool> host_pool;  ///< offloads' host memory (MEMENTO_HOST_BUDGET)
  int device = 0;
  std::unique_ptr<PlanState, void (*)(PlanState*)> plan{nullptr, nullptr};
};

/// The process-wide instance, created from the environment on first use (throws when the
/// environment is malformed or the device cannot be opened).
[[nodiscard]] std::shared_ptr<Instance> instance();

/// The calling thread's last error (what memento_last_error() returns).
[[nodiscard]] std::string& last_error() noexcept;

/// Runs `fn`, turning exceptions into the thread's last error ("what: message") and
/// `on_error`.
template <typename F, typename R>
R guarded(const char* what, R on_error, F&& fn) noexcept {
  std::string& error = last_error();
  try {
    error.clear();
    return fn();
  } catch (const std::exception& e) {
    error = fmt::format("{}: {}", what, e.what());
  } catch (...) {
    error = fmt::format("{}: unknown error", what);
  }
  log::error(error);
  return on_error;
}

}  // namespace memento::capi
