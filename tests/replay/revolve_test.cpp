// The binomial bound of Griewank & Walther, checked against the dynamic programme it
// solves, and the uniform chain replayed by the discarding policies: no replay may beat it.
#include "replay/revolve.hpp"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <limits>
#include <vector>

#include "replay/replay_test_util.hpp"

namespace memento::replay {
namespace {

TEST(Revolve, BinomialCoefficients) {
  EXPECT_EQ(binomial(5, 2), 10u);
  EXPECT_EQ(binomial(10, 0), 1u);
  EXPECT_EQ(binomial(3, 5), 0u);
  EXPECT_EQ(binomial(60, 30), 118264581564861424u);
  EXPECT_EQ(binomial(200, 100), std::numeric_limits<std::size_t>::max());  // saturates
}

TEST(Revolve, ClosedFormMatchesTheOptimalSchedulesProgramme) {
  // T(l, s): the fewest advances reversing l steps from a stored input with s checkpoints:
  // advance j steps, store, reverse the last l - j with s - 1 checkpoints, then the first j
  // with s. T(1, s) = 0; one checkpoint (the input only) restarts from it every time.
  constexpr std::size_t kL = 40, kS = 7;
  std::vector<std::vector<std::size_t>> t(kL + 1, std::vector<std::size_t>(kS + 1, 0));
  for (std::size_t l = 2; l <= kL; ++l) {
    t[l][1] = l * (l - 1) / 2;
    for (std::size_t s = 2; s <= kS; ++s) {
      std::size_t best = std::numeric_limits<std::size_t>::max();
      for (std::size_t j = 1; j < l; ++j) best = std::min(best, j + t[l - j][s - 1] + t[j][s]);
      t[l][s] = best;
    }
  }
  for (std::size_t l = 1; l <= kL; ++l)
    for (std::size_t s = 1; s <= kS; ++s)
      EXPECT_EQ(revolve_forward_steps(l, s), t[l][s]) << "l=" << l << " s=" << s;
  EXPECT_EQ(revolve_forward_steps(100, 200), 99u);  // no memory limit: one sweep
  EXPECT_EQ(revolve_forward_steps(10, 2), 20u);
  EXPECT_EQ(revolve_forward_steps(5, 0), std::numeric_limits<std::size_t>::max());
}

TEST(Revolve, DiscardingPoliciesNeverBeatTheBinomialBoundOnAUniformChain) {
  constexpr std::size_t n = 24, bytes = std::size_t{1} << 20;
  constexpr double fwd = 1000e-9, bwd = 2000e-9;
  const ReplayLog log = testing::log_from(uniform_chain_log(n, bytes, 1000, 2000));
  ASSERT_EQ(log.peak_live_bytes, (n + 2) * bytes);
  ASSERT_DOUBLE_EQ(log.total_seconds, n * fwd + (n + 1) * bwd);
  fmt::print("uniform chain, n={}, 1 MiB activations, forward 1 us, backward 2 us, counted\n", n);
  fmt::print("{:>6} {:>3} {:>10} {:>10} {:>10}\n", "budget", "s", "bound", "dtr", "recompute");
  for (double ratio : {0.9, 0.7, 0.5, 0.3, 0.2}) {
    const auto budget = static_cast<std::size_t>(ratio * static_cast<double>(log.peak_live_bytes));
    // Every tensor the budget holds, less the working state, counts as a checkpoint (the
    // input among them): more than a real schedule has besides the gradient it carries, so
    // the bound is, if anything, loose.
    const std::size_t s = budget / bytes - 1;
    const double forward_steps = static_cast<double>(revolve_forward_steps(n, s) + 1);
    const double bound = ((n + 1) * bwd + forward_steps * fwd) / log.total_seconds;
    std::string row = fmt::format("{:>5.0f}% {:>3} {:>10.4f}", ratio * 100, s, bound);
    for (const char* policy : {"dtr", "recompute"}) {
      const ReplayResult r =
          run_replay(log, testing::options(policy, budget, MemoryModel::counted));
      if (!r.fits) {
        row += fmt::format(" {:>10}", r.thrashed ? "thrash" : "OOM");
        continue;
      }
      EXPECT_GE(*r.slowdown, bound * (1 - 1e-12)) << policy << " at " << ratio;
      EXPECT_LE(r.peak_bytes, budget);
      row += fmt::format(" {:>10.4f}", *r.slowdown);
    }
    fmt::print("{}\n", row);
  }
}

}  // namespace
}  // namespace memento::replay
