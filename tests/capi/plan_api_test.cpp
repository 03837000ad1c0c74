// The decision-only planning API's edges (tests/capi/plan_api_from_c.c drives a whole
// training-like step from C): a full pinned pool, storage memento did not allocate, a step that
// departs from the plan, empty steps, threads, and shutdown with a step open.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <numeric>
#include <thread>
#include <utility>
#include <vector>

#include "capi/plan_fixture.hpp"
#include "memento/memento.h"

namespace {

using memento::testing::contains;
using memento::testing::kMiB;

class PlanApi : public memento::testing::PlanApiEnv {};

TEST_F(PlanApi, FullPinnedPoolIsReportedAndTheTensorStaysUsable) {
  ::setenv("MEMENTO_HOST_BUDGET", "1MiB", 1);
  ASSERT_EQ(memento_step_begin(), 0) << memento_last_error();
  auto [p, id] = tensor(2 * kMiB, 7);
  EXPECT_EQ(memento_offload(id, nullptr), -1);
  EXPECT_TRUE(contains(memento_last_error(), "pinned host pool is exhausted"))
      << memento_last_error();
  EXPECT_TRUE(contains(memento_last_error(), "keep the tensor")) << memento_last_error();
  EXPECT_EQ(memento_tensor_use(id), 0) << memento_last_error();
  EXPECT_EQ(memento_tensor_free(id), 0) << memento_last_error();
  memento_free(p, 2 * kMiB, 0, nullptr);
  EXPECT_EQ(memento_step_end(nullptr), 0) << memento_last_error();
}

TEST_F(PlanApi, OffloadOfStorageMementoDidNotAllocateRoundTrips) {
  // A pointer into the middle of a block (a view) and plain host memory (the host backend's
  // device memory is host memory): no block to mark, so the caller's stream waits instead.
  ASSERT_EQ(memento_step_begin(), 0) << memento_last_error();
  std::vector<unsigned char> foreign(3 * kMiB);
  std::iota(foreign.begin(), foreign.end(), static_cast<unsigned char>(3));
  const std::vector<unsigned char> expected = foreign;
  const std::int64_t id = memento_tensor_register(foreign.data() + 512, kMiB, nullptr);
  ASSERT_GE(id, 0) << memento_last_error();
  ASSERT_EQ(memento_offload(id, nullptr), 0) << memento_last_error();
  ASSERT_EQ(memento_synchronize(nullptr), 0) << memento_last_error();
  std::memset(foreign.data() + 512, 0, kMiB);  // the copy out has run
  ASSERT_EQ(memento_copy_back(id, foreign.data() + 512, nullptr), 0) << memento_last_error();
  ASSERT_EQ(memento_synchronize(nullptr), 0) << memento_last_error();
  EXPECT_EQ(foreign, expected);
  EXPECT_EQ(memento_step_end(nullptr), 0) << memento_last_error();
}

TEST_F(PlanApi, AStepThatDepartsFromThePlanIsObservedAgain) {
  ::setenv("MEMENTO_BUDGET", "8MiB", 1);
  // Three tensors of 2 MiB; the second, made from the first, is used before and after the
  // third's life, so a budget of 5 MiB needs it recomputed. The test carries the plan out.
  auto step = [](std::size_t last_bytes, bool check_plan) {
    memento_step_stats s{};
    EXPECT_EQ(memento_step_begin(), 0) << memento_last_error();
    auto [a, ia] = tensor(2 * kMiB, 1);
    auto [b, ib] = tensor(2 * kMiB, 2);
    EXPECT_EQ(memento_region_register(&ib, 1, &ia, 1, 1e-3), 0) << memento_last_error();
    EXPECT_EQ(memento_tensor_use(ib), 0);
    int action = -1;
    std::uint32_t after_use = 7;
    EXPECT_EQ(memento_plan_action(ib, &action, &after_use), 0) << memento_last_error();
    if (check_plan) {
      EXPECT_EQ(action, MEMENTO_RECOMPUTE);
      EXPECT_EQ(after_use, 0u);
    }
    if (action == MEMENTO_RECOMPUTE) memento_free(b, 2 * kMiB, 0, nullptr);  // carried out
    auto [c, ic] = tensor(last_bytes, 3);
    if (check_plan && last_bytes != 2 * kMiB) {
      // Another program from the third tensor on: every answer is keep for the rest.
      EXPECT_EQ(memento_plan_action(ib, &action, &after_use), 0) << memento_last_error();
      EXPECT_EQ(action, MEMENTO_KEEP);
      action = MEMENTO_RECOMPUTE;  // b's storage is gone all the same
    }
    EXPECT_EQ(memento_tensor_use(ic), 0);
    memento_free(c, static_cast<ssize_t>(last_bytes), 0, nullptr);
    EXPECT_EQ(memento_tensor_free(ic), 0) << memento_last_error();
    if (action == MEMENTO_RECOMPUTE) {
      b = memento_malloc(2 * kMiB, 0, nullptr);  // the region rerun
      EXPECT_NE(b, nullptr) << memento_last_error();
    }
    EXPECT_EQ(memento_tensor_use(ib), 0);
    EXPECT_EQ(memento_tensor_use(ia), 0);
    for (auto [p, id] : {std::pair{a, ia}, std::pair{b, ib}}) {
      memento_free(p, 2 * kMiB, 0, nullptr);
      EXPECT_EQ(memento_tensor_free(id), 0) << memento_last_error();
    }
    EXPECT_EQ(memento_step_end(&s), 0) << memento_last_error();
    return s;
  };
  memento_step_stats s = step(2 * kMiB, false);
  EXPECT_EQ(s.phase, MEMENTO_STEP_OBSERVED);
  // 6 MiB live against a target of 7.6 MiB: nothing to evict. A lower budget needs it.
  EXPECT_EQ(s.recomputed, 0u);
  ASSERT_EQ(memento_set_budget(5 * kMiB), 0) << memento_last_error();
  s = step(2 * kMiB, true);
  EXPECT_EQ(s.phase, MEMENTO_STEP_PLANNED);
  EXPECT_EQ(s.new_plan, 1);
  EXPECT_EQ(s.recomputed, 1u);
  // Other bytes for the third tensor: the plan no longer applies from there on.
  s = step(kMiB, true);
  EXPECT_EQ(s.phase, MEMENTO_STEP_OBSERVED);
  EXPECT_EQ(s.new_plan, 1);
  EXPECT_EQ(s.tensor_bytes, 5 * kMiB);
  s = step(kMiB, false);
  EXPECT_EQ(s.phase, MEMENTO_STEP_PLANNED);
  EXPECT_EQ(s.new_plan, 0);
}

TEST_F(PlanApi, EmptyStepsPlanNothing) {
  memento_step_stats s{};
  ASSERT_EQ(memento_step_begin(), 0) << memento_last_error();
  ASSERT_EQ(memento_step_end(&s), 0) << memento_last_error();
  EXPECT_EQ(s.phase, MEMENTO_STEP_OBSERVED);
  EXPECT_EQ(s.tensors, 0u);
  EXPECT_EQ(s.fits, 1);
  ASSERT_EQ(memento_step_begin(), 0) << memento_last_error();
  ASSERT_EQ(memento_step_end(&s), 0) << memento_last_error();
  EXPECT_EQ(s.phase, MEMENTO_STEP_PLANNED);
  EXPECT_EQ(s.new_plan, 0);
}

TEST_F(PlanApi, ThreadsDescribeOneStepTogether) {
  ASSERT_EQ(memento_step_begin(), 0) << memento_last_error();
  constexpr int kThreads = 4;
  constexpr int kTensors = 25;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([t] {
      for (int i = 0; i < kTensors; ++i) {
        auto [p, id] = tensor(64 * 1024, static_cast<unsigned char>(t));
        EXPECT_EQ(memento_region_register(&id, 1, nullptr, 0, 1e-4), 0) << memento_last_error();
        EXPECT_EQ(memento_tensor_use(id), 0) << memento_last_error();
        if (i % 5 == 0) {
          EXPECT_EQ(memento_offload(id, nullptr), 0) << memento_last_error();
          EXPECT_EQ(memento_copy_back(id, p, nullptr), 0) << memento_last_error();
        }
        EXPECT_EQ(memento_tensor_use(id), 0) << memento_last_error();
        memento_free(p, 64 * 1024, 0, nullptr);
        EXPECT_EQ(memento_tensor_free(id), 0) << memento_last_error();
      }
    });
  for (std::thread& t : threads) t.join();
  memento_step_stats s{};
  ASSERT_EQ(memento_step_end(&s), 0) << memento_last_error();
  EXPECT_EQ(s.tensors, std::size_t{kThreads * kTensors});
}

TEST_F(PlanApi, ShutdownWithAStepOpenDropsItAndItsHostCopies) {
  ASSERT_EQ(memento_step_begin(), 0) << memento_last_error();
  auto [p, id] = tensor(kMiB, 9);
  ASSERT_EQ(memento_offload(id, nullptr), 0) << memento_last_error();
  memento_free(p, kMiB, 0, nullptr);
  memento_shutdown();
  EXPECT_EQ(memento_tensor_use(id), -1);
  EXPECT_TRUE(contains(memento_last_error(), "no step is open")) << memento_last_error();
  EXPECT_EQ(memento_step_begin(), 0) << memento_last_error();
  EXPECT_EQ(memento_step_end(nullptr), 0) << memento_last_error();
}

TEST_F(PlanApi, UnknownStreamsAreRejected) {
  int not_a_stream = 0;
  auto* bogus = reinterpret_cast<memento_stream_t>(&not_a_stream);
  EXPECT_EQ(memento_synchronize(bogus), -1);
  EXPECT_TRUE(contains(memento_last_error(), "not a stream handle")) << memento_last_error();
  ASSERT_EQ(memento_step_begin(), 0) << memento_last_error();
  std::vector<unsigned char> bytes(1024);
  EXPECT_EQ(memento_tensor_register(bytes.data(), bytes.size(), bogus), -1);
  EXPECT_TRUE(contains(memento_last_error(), "not a stream handle")) << memento_last_error();
  EXPECT_EQ(memento_step_end(nullptr), 0) << memento_last_error();
}

}  // namespace
