// The logs shipped in examples/traces (README's example): each parses, replays without a
// budget at exactly the log's own peak of live bytes and its recorded time, and stays
// within a budget under every policy.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <string>

#include "memento/policy.hpp"
#include "replay/replay_log.hpp"
#include "replay/replay_test_util.hpp"
#include "replay/replayer.hpp"

namespace memento::replay {
namespace {

struct Example {
  const char* name;
  const char* file;
  double fitting_ratio;  // a budget (of the log's peak) at which dtr fits
};

class ExampleTrace : public ::testing::TestWithParam<Example> {};

TEST_P(ExampleTrace, ReplaysAtTheLogsPeakAndWithinBudgets) {
  const ReplayLog log =
      load_replay_log(fmt::format("{}/{}", MEMENTO_EXAMPLE_TRACES, GetParam().file));
  EXPECT_TRUE(log.has_backward);
  ASSERT_GT(log.peak_live_bytes, 0u);
  const ReplayResult u = run_replay(log, testing::options("dtr", 0, MemoryModel::counted));
  ASSERT_TRUE(u.fits) << u.error;
  // The optimizer step's old parameter versions go back at once, as the log counts them.
  EXPECT_EQ(u.peak_bytes, log.peak_live_bytes);
  EXPECT_EQ(u.seconds, log.total_seconds);
  EXPECT_EQ(u.evictions, 0u);

  const auto budget_of = [&](double ratio) {
    return static_cast<std::size_t>(ratio * static_cast<double>(log.peak_live_bytes));
  };
  const ReplayResult fit = run_replay(
      log, testing::options("dtr", budget_of(GetParam().fitting_ratio), MemoryModel::counted));
  EXPECT_TRUE(fit.fits) << fit.error;
  EXPECT_LE(fit.peak_bytes, budget_of(GetParam().fitting_ratio));
  for (MemoryModel model : {MemoryModel::counted, MemoryModel::allocator})
    for (const std::string& policy : policy_names()) {
      const std::size_t budget = budget_of(0.7);
      const ReplayResult r = run_replay(log, testing::options(policy, budget, model));
      SCOPED_TRACE(fmt::format("{} {}: {}", to_string(model), policy, r.error));
      EXPECT_LE(r.peak_bytes, budget);
      EXPECT_TRUE(r.fits || r.thrashed || r.error.find("out of memory") != std::string::npos);
    }
}

std::string example_name(const ::testing::TestParamInfo<Example>& p) { return p.param.name; }

INSTANTIATE_TEST_SUITE_P(Examples, ExampleTrace,
                         ::testing::Values(Example{"Gpt2Tiny", "gpt2-tiny.jsonl", 0.7},
                                           Example{"Mlp", "mlp.jsonl", 0.95}),
                         example_name);

}  // namespace
}  // namespace memento::replay
