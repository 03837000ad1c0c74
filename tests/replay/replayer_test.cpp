// Replaying logs through the runtime on sim: exact time and peak without a budget, every
// policy within its budget, thrashing and out-of-memory reported as outcomes.
#include "replay/replayer.hpp"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <string>

#include "memento/error.hpp"
#include "memento/policy.hpp"
#include "replay/replay_test_util.hpp"
#include "replay/revolve.hpp"

namespace memento::replay {
namespace {

using testing::log_from;
using testing::options;

constexpr std::size_t kMiB = std::size_t{1} << 20;

// Every instruction kind, multi-result calls, aliases, a mutation and a view; sizes that
// are not multiples of the allocator's rounding.
std::string mixed_log() {
  return fmt::format(
      R"({{"INSTRUCTION":"ANNOTATE","ANNOTATION":"START"}}
{{"INSTRUCTION":"CONSTANT","NAME":"w"}}
{{"INSTRUCTION":"MEMORY","NAME":"w","MEMORY":{w}}}
{{"INSTRUCTION":"CONSTANT","NAME":"x"}}
{{"INSTRUCTION":"MEMORY","NAME":"x","MEMORY":{a}}}
{{"INSTRUCTION":"CALL","NAME":"linear","ARGS":["x","w"],"RESULT":["h"],"TIME":"12345"}}
{{"INSTRUCTION":"MEMORY","NAME":"h","MEMORY":{a}}}
{{"INSTRUCTION":"ALIAS","NAME":"h","ALIAS":-1}}
{{"INSTRUCTION":"CALL","NAME":"split","ARGS":["h"],"RESULT":["p","q","v"],"TIME":777}}
{{"INSTRUCTION":"MEMORY","NAME":"p","MEMORY":{b}}}
{{"INSTRUCTION":"ALIAS","NAME":"p","ALIAS":-1}}
{{"INSTRUCTION":"MEMORY","NAME":"q","MEMORY":{b}}}
{{"INSTRUCTION":"ALIAS","NAME":"q","ALIAS":-1}}
{{"INSTRUCTION":"MEMORY","NAME":"v","MEMORY":{a}}}
{{"INSTRUCTION":"ALIAS","NAME":"v","ALIAS":0}}
{{"INSTRUCTION":"RELEASE","NAME":"h"}}
{{"INSTRUCTION":"CALL","NAME":"view","ARGS":["v"],"RESULT":["v2"],"TIME":3}}
{{"INSTRUCTION":"MEMORY","NAME":"v2","MEMORY":{a}}}
{{"INSTRUCTION":"ALIAS","NAME":"v2","ALIAS":0}}
{{"INSTRUCTION":"RELEASE","NAME":"v"}}
{{"INSTRUCTION":"MUTATE","NAME":"add_","ARGS":["p","q"],"MUTATE":[0],"TIME":"501.5"}}
{{"INSTRUCTION":"COPY","DST":"p_alias","SRC":"p"}}
{{"INSTRUCTION":"ANNOTATE","ANNOTATION":"BACKWARD"}}
{{"INSTRUCTION":"CALL","NAME":"mul","ARGS":["p","v2","w"],"RESULT":["y"],"TIME":9000}}
{{"INSTRUCTION":"MEMORY","NAME":"y","MEMORY":{c}}}
{{"INSTRUCTION":"ALIAS","NAME":"y","ALIAS":-1}}
{{"INSTRUCTION":"COPY_FROM","DST":"p_alias","SRC":"y"}}
{{"INSTRUCTION":"RELEASE","NAME":"p"}}
{{"INSTRUCTION":"RELEASE","NAME":"q"}}
{{"INSTRUCTION":"RELEASE","NAME":"v2"}}
{{"INSTRUCTION":"CALL","NAME":"sum","ARGS":["y"],"RESULT":["loss"],"TIME":100}}
{{"INSTRUCTION":"MEMORY","NAME":"loss","MEMORY":4}}
{{"INSTRUCTION":"ALIAS","NAME":"loss","ALIAS":-1}}
)",
      fmt::arg("w", 3 * kMiB + 7), fmt::arg("a", 5 * kMiB + 100), fmt::arg("b", 700 * 1024 + 3),
      fmt::arg("c", 2 * kMiB + 1));
}

TEST(Replayer, UnlimitedCountedReplayReproducesTheLogsPeakAndTimeExactly) {
  for (const std::string& text : {mixed_log(), uniform_chain_log(16, 3 * kMiB + 5)}) {
    const ReplayLog log = log_from(text);
    for (const char* policy : {"lru", "dtr"}) {
      const ReplayResult r = run_replay(log, options(policy, 0, MemoryModel::counted));
      ASSERT_TRUE(r.fits) << r.error;
      EXPECT_FALSE(r.thrashed);
      EXPECT_EQ(r.peak_bytes, log.peak_live_bytes);
      EXPECT_EQ(r.peak_allocated, log.peak_live_bytes);
      EXPECT_EQ(r.seconds, log.total_seconds);  // exactly: the same sums in the same order
      ASSERT_TRUE(r.slowdown);
      EXPECT_EQ(*r.slowdown, 1.0);
      EXPECT_EQ(r.evictions, 0u);
      EXPECT_EQ(r.recomputes, 0u);
    }
  }
}

TEST(Replayer, UnlimitedAllocatorReplayHasTheSameTimeAndRoundsMemoryUp) {
  const ReplayLog log = log_from(mixed_log());
  const ReplayResult r = run_replay(log, options("dtr", 0, MemoryModel::allocator));
  ASSERT_TRUE(r.fits) << r.error;
  EXPECT_EQ(r.seconds, log.total_seconds);
  EXPECT_GT(r.peak_bytes, log.peak_live_bytes);  // rounding and segments
  EXPECT_GE(r.peak_allocated, log.peak_live_bytes);
}

TEST(Replayer, EveryPolicyStaysWithinItsBudget) {
  const std::size_t bytes = 3 * kMiB + 100;
  const ReplayLog log = log_from(uniform_chain_log(24, bytes));
  // Budgets are fractions of the log's own peak of live bytes in both models (as `memento
  // replay` sets them), so the allocator model pays for its rounding and fragmentation.
  const std::size_t peak = log.peak_live_bytes;
  for (MemoryModel model : {MemoryModel::counted, MemoryModel::allocator}) {
    for (const std::string& policy : policy_names()) {
      for (double ratio : {0.9, 0.7, 0.5, 0.3}) {
        const auto budget = static_cast<std::size_t>(ratio * static_cast<double>(peak));
        const ReplayResult r = run_replay(log, options(policy, budget, model));
        SCOPED_TRACE(fmt::format("{} {} at {}: {}", to_string(model), policy, ratio, r.error));
        EXPECT_LE(r.peak_bytes, budget);
        EXPECT_TRUE(r.fits || r.thrashed || r.error.find("out of memory") != std::string::npos);
        if (r.fits) {
          EXPECT_GE(*r.slowdown, 1.0);
          EXPECT_GT(r.evictions, 0u);
        }
        // A chain at half its peak is easy for the discarding policies.
        if (ratio >= 0.5 && (policy == "dtr" || policy == "recompute")) {
          EXPECT_TRUE(r.fits);
        }
      }
    }
  }
}

TEST(Replayer, RecomputeTimeBeyondTwiceTheBaselineIsThrashing) {
  // Forward ops ten times the backward's: a long chain in four tensors must rerun far more
  // forward work than the whole step (the revolve bound says at least 195 of 64 steps).
  const std::size_t bytes = kMiB;
  const ReplayLog log = log_from(uniform_chain_log(64, bytes, 1000, 100));
  const ReplayResult r = run_replay(log, options("recompute", 4 * bytes, MemoryModel::counted));
  EXPECT_TRUE(r.thrashed) << r.error;
  EXPECT_FALSE(r.fits);
  EXPECT_NE(r.error.find("thrashing: recompute time"), std::string::npos) << r.error;
  EXPECT_GT(r.recompute_seconds, 2 * log.total_seconds);
  EXPECT_LT(r.instructions_done, log.program.size());
  EXPECT_FALSE(r.slowdown);
}

TEST(Replayer, ABudgetBelowTheWorkingSetIsReportedAsNotFitting) {
  const std::size_t bytes = kMiB;
  const ReplayLog log = log_from(uniform_chain_log(8, bytes));
  for (MemoryModel model : {MemoryModel::counted, MemoryModel::allocator}) {
    const ReplayResult r = run_replay(log, options("dtr", 2 * bytes, model));
    EXPECT_FALSE(r.fits);
    EXPECT_FALSE(r.thrashed);
    EXPECT_NE(r.error.find("out of memory"), std::string::npos) << r.error;
    EXPECT_LE(r.peak_bytes, 2 * bytes);
  }
}

TEST(Replayer, MultiResultRecomputeRerunsTheWholeOperator) {
  // Two results of one 1 ms op; the tight budget forces q out and back: its recompute
  // takes the op's recorded time, though its first launch took none.
  const std::string text = R"({"INSTRUCTION":"ANNOTATE","ANNOTATION":"START"}
{"INSTRUCTION":"CONSTANT","NAME":"x"}
{"INSTRUCTION":"MEMORY","NAME":"x","MEMORY":1048576}
{"INSTRUCTION":"CALL","NAME":"two","ARGS":["x"],"RESULT":["p","q"],"TIME":1000000}
{"INSTRUCTION":"MEMORY","NAME":"p","MEMORY":1048576}
{"INSTRUCTION":"ALIAS","NAME":"p","ALIAS":-1}
{"INSTRUCTION":"MEMORY","NAME":"q","MEMORY":1048576}
{"INSTRUCTION":"ALIAS","NAME":"q","ALIAS":-1}
{"INSTRUCTION":"CALL","NAME":"big","ARGS":["p"],"RESULT":["z"],"TIME":1000}
{"INSTRUCTION":"MEMORY","NAME":"z","MEMORY":1048576}
{"INSTRUCTION":"ALIAS","NAME":"z","ALIAS":-1}
{"INSTRUCTION":"RELEASE","NAME":"p"}
{"INSTRUCTION":"CALL","NAME":"use","ARGS":["q","z"],"RESULT":["y"],"TIME":1000}
{"INSTRUCTION":"MEMORY","NAME":"y","MEMORY":1}
{"INSTRUCTION":"ALIAS","NAME":"y","ALIAS":-1}
)";
  const ReplayLog log = log_from(text);
  const ReplayResult base = run_replay(log, options("recompute", 0, MemoryModel::counted));
  ASSERT_TRUE(base.fits);
  EXPECT_DOUBLE_EQ(base.seconds, 1002e-6);
  // x, p, q live, z needs a slot: q (the only evictable tensor not in use) is discarded.
  const ReplayResult r = run_replay(log, options("recompute", 3 * kMiB + 1, MemoryModel::counted));
  ASSERT_TRUE(r.fits) << r.error;
  EXPECT_EQ(r.recomputes, 1u);
  EXPECT_DOUBLE_EQ(r.recompute_seconds, 1e-3);
  EXPECT_DOUBLE_EQ(r.seconds, 2002e-6);
}

TEST(Replayer, AnOptimizerStepGivesTheOldWeightsMemoryBackAtOnce) {
  // g (w's gradient, an output) has a recipe reading h, which reads w. The step overwrites
  // w: the old version's memory must go back then, as the log counts it, not stay pinned
  // by g's recipe (which would recompute from overwritten weights).
  const std::string text = R"({"INSTRUCTION":"ANNOTATE","ANNOTATION":"START"}
{"INSTRUCTION":"CONSTANT","NAME":"x"}
{"INSTRUCTION":"MEMORY","NAME":"x","MEMORY":1048576}
{"INSTRUCTION":"CONSTANT","NAME":"w"}
{"INSTRUCTION":"MEMORY","NAME":"w","MEMORY":1048576}
{"INSTRUCTION":"CALL","NAME":"linear","ARGS":["x","w"],"RESULT":["h"],"TIME":1000}
{"INSTRUCTION":"MEMORY","NAME":"h","MEMORY":1048576}
{"INSTRUCTION":"ALIAS","NAME":"h","ALIAS":-1}
{"INSTRUCTION":"ANNOTATE","ANNOTATION":"BACKWARD"}
{"INSTRUCTION":"CALL","NAME":"grad","ARGS":["h","x"],"RESULT":["g"],"TIME":2000}
{"INSTRUCTION":"MEMORY","NAME":"g","MEMORY":1048576}
{"INSTRUCTION":"ALIAS","NAME":"g","ALIAS":-1}
{"INSTRUCTION":"RELEASE","NAME":"h"}
{"INSTRUCTION":"MUTATE","NAME":"sgd","ARGS":["w","g"],"MUTATE":[0],"TIME":500}
{"INSTRUCTION":"CALL","NAME":"linear","ARGS":["x","w"],"RESULT":["z"],"TIME":1000}
{"INSTRUCTION":"MEMORY","NAME":"z","MEMORY":1048576}
{"INSTRUCTION":"ALIAS","NAME":"z","ALIAS":-1}
)";
  const ReplayLog log = log_from(text);
  EXPECT_EQ(log.peak_live_bytes, 4 * kMiB);
  for (MemoryModel model : {MemoryModel::counted, MemoryModel::allocator}) {
    const ReplayResult u = run_replay(log, options("dtr", 0, model));
    ASSERT_TRUE(u.fits) << u.error;
    if (model == MemoryModel::counted) {
      EXPECT_EQ(u.peak_bytes, log.peak_live_bytes);
    }
    EXPECT_EQ(u.seconds, log.total_seconds);
  }
  // At the log's own peak it fits with nothing to evict.
  const ReplayResult r = run_replay(log, options("dtr", 4 * kMiB, MemoryModel::counted));
  ASSERT_TRUE(r.fits) << r.error;
  EXPECT_EQ(r.evictions, 0u);
}

TEST(Replayer, BadPolicyAndOversizedBudgetAreConfigErrors) {
  const ReplayLog log = log_from(uniform_chain_log(4, kMiB));
  EXPECT_THROW((void)run_replay(log, options("fastest", 0, MemoryModel::counted)), ConfigError);
  EXPECT_THROW((void)run_replay(log, options("dtr", std::size_t{1} << 50, MemoryModel::counted)),
               ConfigError);
}

}  // namespace
}  // namespace memento::replay
