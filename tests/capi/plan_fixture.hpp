// The C API tests' fixture: each test starts from a fresh process-wide instance on a
// host:64MiB device configured by its own environment (the variables it does not set are
// unset), and everything is restored afterwards.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "memento/memento.h"

namespace memento::testing {

inline constexpr std::size_t kMiB = std::size_t{1} << 20;

inline bool contains(const char* text, const char* part) {
  return text != nullptr && std::strstr(text, part) != nullptr;
}

class PlanApiEnv : public ::testing::Test {
 protected:
  static constexpr const char* kVars[] = {"MEMENTO_DEVICE",      "MEMENTO_BUDGET", "MEMENTO_CONF",
                                          "MEMENTO_HOST_BUDGET", "MEMENTO_POLICY", "MEMENTO_TRACE"};

  void SetUp() override {
    memento_shutdown();
    for (const char* name : kVars) {
      const char* value = std::getenv(name);
      saved_.emplace_back(name, value ? std::optional<std::string>(value) : std::nullopt);
      ::unsetenv(name);
    }
    ::setenv("MEMENTO_DEVICE", "host:64MiB", 1);
  }

  void TearDown() override {
    memento_shutdown();
    for (auto& [name, value] : saved_) {
      if (value)
        ::setenv(name.c_str(), value->c_str(), 1);
      else
        ::unsetenv(name.c_str());
    }
  }

  /// A memento_malloc'd tensor of `bytes` filled with `seed`, registered in the open step.
  static std::pair<void*, std::int64_t> tensor(std::size_t bytes, unsigned char seed) {
    void* p = memento_malloc(static_cast<ssize_t>(bytes), 0, nullptr);
    EXPECT_NE(p, nullptr) << memento_last_error();
    if (p != nullptr) std::memset(p, seed, bytes);
    const std::int64_t id = memento_tensor_register(p, bytes, nullptr);
    EXPECT_GE(id, 0) << memento_last_error();
    return {p, id};
  }

  std::vector<std::pair<std::string, std::optional<std::string>>> saved_;
};

}  // namespace memento::testing
