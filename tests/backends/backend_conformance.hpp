// The fixture and helpers of the Backend conformance suites (memory and streams).
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "backend_types.hpp"
#include "memento/backends.hpp"
#include "memento/device_profile.hpp"
#include "memento/error.hpp"

namespace memento::conformance {

inline constexpr std::size_t kMiB = std::size_t{1} << 20;

template <typename T>
class BackendConformance : public ::testing::Test {
 protected:
  void SetUp() override {
    MEMENTO_SKIP_UNAVAILABLE(T);
    backend_ = T::make();
  }

  void TearDown() override {
    if (!backend_) return;
    // Nothing queued may outlive the buffers a test hands to it.
    backend_->synchronize_all();
  }

  [[nodiscard]] BackendKind kind() const { return backend_->info().kind; }
  /// True where device and pinned memory are real bytes (not sim's address space).
  [[nodiscard]] bool real_memory() const { return backend_->info().holds_data; }

  std::unique_ptr<Backend> backend_;
};

/// A kernel every backend can launch: `host` runs on host, an empty body on cuda, and sim
/// charges the cost.
inline Kernel kernel(
    std::string name, KernelCost cost, std::function<void()> host = [] {}) {
  return Kernel{std::move(name), cost, std::move(host), [](void*) {}};
}

/// RAII device segment so a failing assertion does not leak into the backend's destructor.
struct Segment {
  Segment(Backend& b, std::size_t n) : backend(b), bytes(n), ptr(b.allocate_segment(n)) {}
  ~Segment() {
    if (ptr != nullptr) backend.free_segment(ptr, bytes);
  }
  Segment(const Segment&) = delete;
  Segment& operator=(const Segment&) = delete;
  Backend& backend;
  std::size_t bytes;
  void* ptr;
};

struct Pinned {
  Pinned(Backend& b, std::size_t n) : backend(b), bytes(n), ptr(b.allocate_pinned(n, -1)) {}
  ~Pinned() {
    if (ptr != nullptr) backend.free_pinned(ptr, bytes);
  }
  Pinned(const Pinned&) = delete;
  Pinned& operator=(const Pinned&) = delete;
  Backend& backend;
  std::size_t bytes;
  void* ptr;
};

}  // namespace memento::conformance
