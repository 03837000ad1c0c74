// Backend factories for typed conformance suites: every suite runs on host and sim, and on
// cuda where a GPU exists (skipped with the reason otherwise).
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <random>
#include <string>

#include "memento/backends.hpp"

namespace memento::testing {

struct HostBackendType {
  static constexpr const char* name = "host";
  static std::unique_ptr<Backend> make() {
    return make_host_backend({.capacity = std::size_t{1} << 30, .link_bandwidth = 0});
  }
  static std::string skip_reason() { return {}; }
};

struct SimBackendType {
  static constexpr const char* name = "sim";
  static std::unique_ptr<Backend> make() {
    return make_sim_backend(find_device_profile("a100-40gb"));
  }
  static std::string skip_reason() { return {}; }
};

struct CudaBackendType {
  static constexpr const char* name = "cuda";
  static std::unique_ptr<Backend> make() { return make_cuda_backend(0); }
  static std::string skip_reason() {
    if (!cuda_backend_compiled()) return "memento was built without the cuda backend";
    if (cuda_device_count() == 0) return "no CUDA device on this machine";
    return {};
  }
};

using AllBackendTypes = ::testing::Types<HostBackendType, SimBackendType, CudaBackendType>;

struct BackendTypeNames {
  template <typename T>
  static std::string GetName(int) {
    return T::name;
  }
};

/// A seed from MEMENTO_TEST_SEED or the clock, printed so a failure can be replayed.
inline std::uint64_t test_seed() {
  std::uint64_t seed = 0;
  if (const char* env = std::getenv("MEMENTO_TEST_SEED")) {
    seed = std::strtoull(env, nullptr, 10);
  } else {
    seed = std::random_device{}();
  }
  std::cout << "[ seed     ] MEMENTO_TEST_SEED=" << seed << "\n";
  ::testing::Test::RecordProperty("seed", std::to_string(seed));
  return seed;
}

}  // namespace memento::testing

/// Skips the current test when the backend type cannot run here.
#define MEMENTO_SKIP_UNAVAILABLE(Type)                        \
  do {                                                        \
    if (auto reason = Type::skip_reason(); !reason.empty()) { \
      GTEST_SKIP() << Type::name << " backend: " << reason;   \
    }                                                         \
  } while (0)

namespace memento::testing {

/// Fixture for typed suites: a fresh backend of type T per test, skipped where T can't run.
template <typename T>
class BackendTest : public ::testing::Test {
 protected:
  void SetUp() override {
    MEMENTO_SKIP_UNAVAILABLE(T);
    backend_ = T::make();
  }
  std::unique_ptr<Backend> backend_;
};

}  // namespace memento::testing
