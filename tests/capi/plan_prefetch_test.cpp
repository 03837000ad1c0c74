// The plan's prefetch schedule through the C API: with link rates given and the caller's
// seconds noted, a tight budget offloads two tensors across a long gap; memento_prefetch_due
// names each once, from the point its planned copy back starts and not before, in the
// plan's order; memento_prefetch + memento_wait_ready bring the bytes back unchanged.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <thread>
#include <utility>
#include <vector>

#include "capi/plan_fixture.hpp"
#include "memento/memento.h"

namespace {

using memento::testing::contains;
using memento::testing::kMiB;

constexpr std::size_t kSmall = 4 * kMiB;
constexpr std::size_t kLarge = 6 * kMiB;
// A 4 MiB copy takes 0.15 s on the link as the planner counts it (rates / 1.5).
constexpr double kLinkRate = 1.5 * kSmall / 0.15;

std::vector<unsigned char> pattern(std::size_t bytes, int seed) {
  std::vector<unsigned char> v(bytes);
  for (std::size_t k = 0; k < bytes; ++k)
    v[k] = static_cast<unsigned char>(static_cast<std::size_t>(seed) * 31 + k * 7 + (k >> 11));
  return v;
}

/// One step of a program whose storage is the test's own (memento sees none of it): A and B
/// (4 MiB) made and used, 0.4 s of compute, C and D (6 MiB) made, used and freed over 0.2 s,
/// 0.2 s more, then A and B used again and freed. Points: 0 A, 1 B, 2 use A, 3 use B, 4 C,
/// 5 D, 6 use C, 7 use D, 8 free D, 9 free C, 10 use A, 11 use B, 12 free A, 13 free B.
/// Under 15 MiB both A and B must be away around C and D. The test carries the plan out:
/// it offloads after the use the plan names, and after each point from `poll_from` on asks
/// memento_prefetch_due (`cap` at a time) and prefetches what it names.
class OffloadProgram {
 public:
  bool note = true;
  std::size_t poll_from = 0;
  std::size_t cap = 4;
  bool prefetch = true;  ///< prefetch what memento_prefetch_due names (or leave it offloaded)
  std::vector<std::pair<std::size_t, std::vector<std::int64_t>>> due;  ///< (point, ids named)
  int following = -2;                                                  ///< at the step's begin
  bool late = false;  ///< a tensor was still offloaded at its use
  std::int64_t id[2] = {-1, -1};

  memento_step_stats step() {
    memento_step_stats s{};
    due.clear();
    point_ = 0;
    late = false;
    EXPECT_EQ(memento_step_begin(), 0) << memento_last_error();
    following = memento_step_following();
    for (int k = 0; k < 2; ++k) {
      store_[k] = pattern(kSmall, k);
      ptr_[k] = store_[k].data();
      id[k] = memento_tensor_register(ptr_[k], kSmall, nullptr);
      EXPECT_GE(id[k], 0) << memento_last_error();
      after_point();
    }
    for (int k = 0; k < 2; ++k) use(k, true);
    seconds(0.4);
    std::vector<unsigned char> c(kLarge, 1), d(kLarge, 2);
    const std::int64_t ic = memento_tensor_register(c.data(), kLarge, nullptr);
    after_point();
    const std::int64_t id_d = memento_tensor_register(d.data(), kLarge, nullptr);
    after_point();
    for (std::int64_t i : {ic, id_d}) {
      EXPECT_EQ(memento_tensor_use(i), 0) << memento_last_error();
      after_point();
    }
    seconds(0.2);
    for (std::int64_t i : {id_d, ic}) {
      EXPECT_EQ(memento_tensor_free(i), 0) << memento_last_error();
      after_point();
    }
    seconds(0.2);
    for (int k = 0; k < 2; ++k) use(k, false);
    for (int k = 0; k < 2; ++k) {
      EXPECT_EQ(memento_tensor_free(id[k]), 0) << memento_last_error();
      after_point();
      if (malloced_[k] != nullptr) memento_free(malloced_[k], kSmall, 0, nullptr);
      malloced_[k] = nullptr;
    }
    EXPECT_EQ(memento_step_end(&s), 0) << memento_last_error();
    return s;
  }

 private:
  enum State { present, offloaded, prefetched };

  void seconds(double s) {
    if (note) {
      EXPECT_EQ(memento_note_seconds(s), 0) << memento_last_error();
    }
  }

  void use(int k, bool first) {
    if (state_[k] == offloaded) {  // not prefetched in time: copy back and wait
      late = true;
      ptr_[k] = dst(k);
      EXPECT_EQ(memento_copy_back(id[k], ptr_[k], nullptr), 0) << memento_last_error();
    } else if (state_[k] == prefetched) {
      EXPECT_EQ(memento_wait_ready(id[k], nullptr), 0) << memento_last_error();
    }
    ASSERT_EQ(memento_synchronize(nullptr), 0) << memento_last_error();
    EXPECT_TRUE(std::memcmp(ptr_[k], pattern(kSmall, k).data(), kSmall) == 0)
        << "tensor " << k << "'s bytes at its use";
    state_[k] = present;
    EXPECT_EQ(memento_tensor_use(id[k]), 0) << memento_last_error();
    int action = -1;
    std::uint32_t after_use = 9;
    EXPECT_EQ(memento_plan_action(id[k], &action, &after_use), 0) << memento_last_error();
    if (first && action == MEMENTO_OFFLOAD && after_use == 0) {
      EXPECT_EQ(memento_offload(id[k], nullptr), 0) << memento_last_error();
      // The storage is the test's: the stream waited for the copy; then it is reused.
      EXPECT_EQ(memento_synchronize(nullptr), 0) << memento_last_error();
      std::memset(ptr_[k], 0, kSmall);
      state_[k] = offloaded;
    }
    after_point();
  }

  // Where tensor k comes back: the test's memory for A, a memento_malloc block for B.
  void* dst(int k) {
    if (k == 0) {
      back_[k].assign(kSmall, 0xee);
      return back_[k].data();
    }
    malloced_[k] = memento_malloc(kSmall, 0, nullptr);
    EXPECT_NE(malloced_[k], nullptr) << memento_last_error();
    return malloced_[k];
  }

  void after_point() {
    const std::size_t at = point_++;
    if (at < poll_from) return;
    for (int call = 0;; ++call) {
      ASSERT_LT(call, 8) << "memento_prefetch_due keeps naming tensors at point " << at;
      std::vector<std::int64_t> ids(cap + 1, -7);
      const int n = memento_prefetch_due(ids.data(), cap);
      EXPECT_GE(n, 0) << memento_last_error();
      EXPECT_EQ(ids[cap], -7) << "wrote past cap";
      if (n <= 0) return;
      ids.resize(static_cast<std::size_t>(n));
      due.emplace_back(at, ids);
      for (std::int64_t i : ids) {
        if (!prefetch) continue;
        const int k = i == id[0] ? 0 : i == id[1] ? 1 : -1;
        ASSERT_GE(k, 0) << "prefetch_due named id " << i << ", neither A nor B";
        EXPECT_EQ(state_[k], offloaded);
        ptr_[k] = dst(k);
        EXPECT_EQ(memento_prefetch(i, ptr_[k], nullptr), 0) << memento_last_error();
        state_[k] = prefetched;
      }
    }
  }

  std::size_t point_ = 0;
  std::vector<unsigned char> store_[2], back_[2];
  void* ptr_[2] = {nullptr, nullptr};
  void* malloced_[2] = {nullptr, nullptr};
  State state_[2] = {present, present};
};

class PlanPrefetch : public memento::testing::PlanApiEnv {
 protected:
  void SetUp() override {
    PlanApiEnv::SetUp();
    ::setenv("MEMENTO_BUDGET", "15MiB", 1);
    ::setenv("MEMENTO_HOST_BUDGET", "64MiB", 1);
  }
};

TEST_F(PlanPrefetch, CopiesBackAreDueFromTheirPlannedPointOnceEachInOrder) {
  ASSERT_EQ(memento_set_link_bandwidth(kLinkRate, kLinkRate), 0) << memento_last_error();
  OffloadProgram program;
  memento_step_stats s = program.step();
  EXPECT_EQ(program.following, 0);
  EXPECT_TRUE(program.due.empty()) << "a step without a plan has no prefetch schedule";
  EXPECT_EQ(s.phase, MEMENTO_STEP_OBSERVED);
  EXPECT_EQ(s.offloaded, 2u);
  EXPECT_EQ(s.fits, 1);
  EXPECT_NEAR(s.observed_seconds, 0.8, 1e-9);  // the noted seconds are the step's clock
  EXPECT_NEAR(s.predicted_extra_seconds, 0.0, 1e-9);

  // B is used last: its copy back runs 0.65 s to 0.8 s, after point 9 (0.6 s); A's ends
  // when B's starts, 0.5 s to 0.65 s, after point 7 (0.4 s). Asked after every point, each
  // is named once, at that point and not before.
  s = program.step();
  EXPECT_EQ(program.following, 1);
  using Due = std::vector<std::pair<std::size_t, std::vector<std::int64_t>>>;
  EXPECT_EQ(program.due, (Due{{7, {program.id[0]}}, {9, {program.id[1]}}}));
  EXPECT_FALSE(program.late);
  EXPECT_EQ(s.phase, MEMENTO_STEP_PLANNED);

  // Asked first after point 9, one at a time: A (due earlier) first, then B, then none.
  program.poll_from = 9;
  program.cap = 1;
  s = program.step();
  EXPECT_EQ(program.due, (Due{{9, {program.id[0]}}, {9, {program.id[1]}}}));
  EXPECT_FALSE(program.late);
  EXPECT_EQ(s.phase, MEMENTO_STEP_PLANNED);

  // Named and left offloaded: named once all the same (copied back late, at the use).
  program.poll_from = 0;
  program.cap = 4;
  program.prefetch = false;
  s = program.step();
  EXPECT_EQ(program.due, (Due{{7, {program.id[0]}}, {9, {program.id[1]}}}));
  EXPECT_TRUE(program.late);
  EXPECT_EQ(s.phase, MEMENTO_STEP_PLANNED);
}

TEST_F(PlanPrefetch, WithoutNotedSecondsOrLinkRatesNothingIsOffloaded) {
  // No link rates: the host backend knows none, so the plan cannot offload.
  OffloadProgram program;
  memento_step_stats s = program.step();
  EXPECT_EQ(s.offloaded, 0u);
  EXPECT_EQ(s.fits, 0);
  // Rates given then taken back (both 0): the backend's again.
  memento_shutdown();
  ASSERT_EQ(memento_set_link_bandwidth(kLinkRate, kLinkRate), 0) << memento_last_error();
  ASSERT_EQ(memento_set_link_bandwidth(0, 0), 0) << memento_last_error();
  s = program.step();
  EXPECT_EQ(s.offloaded, 0u);
  // Rates, but no noted seconds: the step takes no time, so no copy can hide.
  memento_shutdown();
  ASSERT_EQ(memento_set_link_bandwidth(kLinkRate, kLinkRate), 0) << memento_last_error();
  program.note = false;
  s = program.step();
  EXPECT_EQ(s.offloaded, 0u);
  EXPECT_EQ(s.fits, 0);
  // memento_shutdown forgets the rates.
  memento_shutdown();
  program.note = true;
  s = program.step();
  EXPECT_EQ(s.offloaded, 0u);
}

TEST_F(PlanPrefetch, PrefetchWaitReadyAndUseRoundTripBitIdentical) {
  ASSERT_EQ(memento_step_begin(), 0) << memento_last_error();
  const std::vector<unsigned char> expected = pattern(kSmall, 3);
  auto [p, id] = tensor(kSmall, 0);
  std::memcpy(p, expected.data(), kSmall);
  EXPECT_EQ(memento_wait_ready(id, nullptr), 0) << "nothing pending: " << memento_last_error();
  ASSERT_EQ(memento_offload(id, nullptr), 0) << memento_last_error();
  memento_free(p, kSmall, 0, nullptr);  // at once: the copy out holds the block
  void* dst = memento_malloc(kSmall, 0, nullptr);
  ASSERT_NE(dst, nullptr) << memento_last_error();
  ASSERT_EQ(memento_prefetch(id, dst, nullptr), 0) << memento_last_error();
  EXPECT_EQ(memento_prefetch(id, dst, nullptr), -1);
  EXPECT_TRUE(contains(memento_last_error(), "is not offloaded")) << memento_last_error();
  EXPECT_EQ(memento_tensor_use(id), 0) << "a pending copy back: " << memento_last_error();
  ASSERT_EQ(memento_wait_ready(id, nullptr), 0) << memento_last_error();
  ASSERT_EQ(memento_synchronize(nullptr), 0) << memento_last_error();
  EXPECT_EQ(std::memcmp(dst, expected.data(), kSmall), 0);
  EXPECT_EQ(memento_wait_ready(id, nullptr), 0) << memento_last_error();

  // Offloaded again straight after a prefetch nobody waited for: the copy out reads the
  // bytes the copy back wrote. Then into the test's own memory.
  std::vector<unsigned char> mine(kSmall, 0xee);
  ASSERT_EQ(memento_prefetch(id, dst, nullptr), -1);  // not offloaded now
  ASSERT_EQ(memento_offload(id, nullptr), 0) << memento_last_error();
  memento_free(dst, kSmall, 0, nullptr);
  ASSERT_EQ(memento_prefetch(id, mine.data(), nullptr), 0) << memento_last_error();
  ASSERT_EQ(memento_offload(id, nullptr), 0) << memento_last_error();
  ASSERT_EQ(memento_synchronize(nullptr), 0) << memento_last_error();
  std::vector<unsigned char> again(kSmall, 0x11);
  ASSERT_EQ(memento_copy_back(id, again.data(), nullptr), 0) << memento_last_error();
  ASSERT_EQ(memento_synchronize(nullptr), 0) << memento_last_error();
  EXPECT_EQ(again, expected);
  EXPECT_EQ(mine, expected);
  EXPECT_EQ(memento_tensor_free(id), 0) << memento_last_error();
  EXPECT_EQ(memento_wait_ready(id, nullptr), 0) << "freed: nothing pending";
  EXPECT_EQ(memento_step_end(nullptr), 0) << memento_last_error();
}

TEST_F(PlanPrefetch, AnAsyncOffloadIsDoneOnceItsCopyHasReadTheStorage) {
  // The caller's own storage, kept until memento_offload_done says so; nothing waits for the
  // copy on the caller's stream.
  ASSERT_EQ(memento_step_begin(), 0) << memento_last_error();
  const std::vector<unsigned char> expected = pattern(kSmall, 5);
  std::vector<unsigned char> mine = expected;
  const std::int64_t id = memento_tensor_register(mine.data(), kSmall, nullptr);
  ASSERT_GE(id, 0) << memento_last_error();
  EXPECT_EQ(memento_offload_done(id, 0), -1);
  EXPECT_TRUE(contains(memento_last_error(), "is not offloaded")) << memento_last_error();
  ASSERT_EQ(memento_offload_async(id, nullptr), 0) << memento_last_error();
  const int now = memento_offload_done(id, 0);
  EXPECT_TRUE(now == 0 || now == 1) << memento_last_error();
  ASSERT_EQ(memento_offload_done(id, 1), 1) << memento_last_error();
  std::fill(mine.begin(), mine.end(), 0);  // the storage may go: the copy has read it
  std::vector<unsigned char> back(kSmall, 0x11);
  ASSERT_EQ(memento_copy_back(id, back.data(), nullptr), 0) << memento_last_error();
  ASSERT_EQ(memento_synchronize(nullptr), 0) << memento_last_error();
  EXPECT_EQ(back, expected);
  EXPECT_EQ(memento_offload_done(id, 1), -1) << "a copy back ends the offload";
  EXPECT_EQ(memento_offload_done(id + 1, 0), -1);
  EXPECT_TRUE(contains(memento_last_error(), "unknown tensor id")) << memento_last_error();
  EXPECT_EQ(memento_tensor_free(id), 0) << memento_last_error();
  EXPECT_EQ(memento_step_end(nullptr), 0) << memento_last_error();
}

TEST_F(PlanPrefetch, PendingCopiesBackAtStepEndAndShutdownAreDropped) {
  // Prefetches nobody waits for, left at the step's end and at shutdown: the events go back
  // to the spares (the next step reuses them) and the streams are drained. The test's own
  // storage outlives the instance: no stream of the test's waited for those copies.
  std::vector<std::vector<unsigned char>> back;
  back.reserve(24);
  for (int round = 0; round < 3; ++round) {
    ASSERT_EQ(memento_step_begin(), 0) << memento_last_error();
    for (int i = 0; i < 8; ++i) {
      auto [p, id] = tensor(64 * 1024, static_cast<unsigned char>(i));
      ASSERT_EQ(memento_offload(id, nullptr), 0) << memento_last_error();
      memento_free(p, 64 * 1024, 0, nullptr);
      back.emplace_back(64 * 1024);
      ASSERT_EQ(memento_prefetch(id, back.back().data(), nullptr), 0) << memento_last_error();
    }
    if (round == 2) {
      memento_shutdown();  // with the step open
      break;
    }
    ASSERT_EQ(memento_step_end(nullptr), 0) << memento_last_error();
    ASSERT_EQ(memento_empty_cache(), 0) << memento_last_error();
  }
  EXPECT_EQ(memento_step_following(), -1);
  EXPECT_TRUE(contains(memento_last_error(), "no step is open")) << memento_last_error();
}

TEST_F(PlanPrefetch, ThreadsPrefetchTogether) {
  ASSERT_EQ(memento_step_begin(), 0) << memento_last_error();
  constexpr int kThreads = 4;
  constexpr int kTensors = 20;
  constexpr std::size_t kBytes = 64 * 1024;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([t] {
      for (int i = 0; i < kTensors; ++i) {
        const auto seed = static_cast<unsigned char>(t * kTensors + i);
        auto [p, id] = tensor(kBytes, seed);
        EXPECT_EQ(memento_tensor_use(id), 0) << memento_last_error();
        EXPECT_EQ(memento_offload(id, nullptr), 0) << memento_last_error();
        memento_free(p, kBytes, 0, nullptr);
        void* dst = memento_malloc(kBytes, 0, nullptr);
        EXPECT_NE(dst, nullptr) << memento_last_error();
        EXPECT_EQ(memento_prefetch(id, dst, nullptr), 0) << memento_last_error();
        EXPECT_EQ(memento_tensor_use(id), 0) << memento_last_error();
        EXPECT_EQ(memento_wait_ready(id, nullptr), 0) << memento_last_error();
        EXPECT_EQ(memento_synchronize(nullptr), 0) << memento_last_error();
        const auto* bytes = static_cast<const unsigned char*>(dst);
        EXPECT_EQ(bytes[0], seed);
        EXPECT_EQ(bytes[kBytes - 1], seed);
        memento_free(dst, kBytes, 0, nullptr);
        EXPECT_EQ(memento_tensor_free(id), 0) << memento_last_error();
      }
    });
  for (std::thread& t : threads) t.join();
  ASSERT_EQ(memento_step_end(nullptr), 0) << memento_last_error();
}

TEST_F(PlanPrefetch, BadArgumentsAreNamed) {
  EXPECT_EQ(memento_prefetch_due(nullptr, 0), -1);
  EXPECT_TRUE(contains(memento_last_error(), "no step is open")) << memento_last_error();
  ASSERT_EQ(memento_step_begin(), 0) << memento_last_error();
  std::int64_t ids[2];
  EXPECT_EQ(memento_prefetch_due(nullptr, 0), 0) << memento_last_error();
  EXPECT_EQ(memento_prefetch_due(ids, 2), 0) << "no plan: " << memento_last_error();
  EXPECT_EQ(memento_prefetch_due(nullptr, 3), -1);
  EXPECT_TRUE(contains(memento_last_error(), "memento_prefetch_due: ids is NULL with cap 3"))
      << memento_last_error();
  auto [p, id] = tensor(kMiB, 5);
  std::vector<unsigned char> dst(kMiB);
  EXPECT_EQ(memento_prefetch(id, dst.data(), nullptr), -1);
  EXPECT_TRUE(contains(memento_last_error(), "is not offloaded (memento_offload first)"))
      << memento_last_error();
  ASSERT_EQ(memento_offload(id, nullptr), 0) << memento_last_error();
  EXPECT_EQ(memento_prefetch(id, nullptr, nullptr), -1);
  EXPECT_TRUE(contains(memento_last_error(), "destination must not be NULL"))
      << memento_last_error();
  EXPECT_EQ(memento_prefetch(id + 100, dst.data(), nullptr), -1);
  EXPECT_TRUE(contains(memento_last_error(), "unknown tensor id")) << memento_last_error();
  EXPECT_EQ(memento_wait_ready(id + 100, nullptr), -1);
  EXPECT_TRUE(contains(memento_last_error(), "memento_wait_ready: unknown tensor id"))
      << memento_last_error();
  EXPECT_EQ(memento_wait_ready(-1, nullptr), -1);
  EXPECT_TRUE(contains(memento_last_error(), "unknown tensor id -1")) << memento_last_error();
  int not_a_stream = 0;
  EXPECT_EQ(memento_prefetch(id, dst.data(), reinterpret_cast<memento_stream_t>(&not_a_stream)),
            -1);
  EXPECT_TRUE(contains(memento_last_error(), "not a stream handle")) << memento_last_error();
  memento_free(p, kMiB, 0, nullptr);
  EXPECT_EQ(memento_step_end(nullptr), 0) << memento_last_error();
}

}  // namespace
