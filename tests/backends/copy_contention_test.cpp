// sim::stretched: how long a copy takes beside engines that slow it while they are busy.
#include "backends/sim/copy_contention.hpp"

#include <gtest/gtest.h>

namespace memento::sim {
namespace {

TEST(CopyContention, AloneACopyTakesItsOwnTime) {
  EXPECT_NEAR(stretched(0, 1, {}), 1, 1e-12);
  EXPECT_NEAR(stretched(5, 1, {{4, 3}, {5, 2}}), 1, 1e-12);  // both done by the start
}

TEST(CopyContention, UnderABusyEngineThePartThatOverlapsGoesSlower) {
  EXPECT_NEAR(stretched(0, 1, {{10, 2}}), 2, 1e-12);  // all of it under the engine
  // Half a second under a factor of 2 does a quarter; the other three quarters go at rate.
  EXPECT_NEAR(stretched(5, 1, {{5.5, 2}}), 1.25, 1e-12);
}

TEST(CopyContention, EnginesBusyAtOnceMultiplyTheirFactors) {
  // [0, 1): both busy, factor 3, a third done; [1, 3): factor 1.5, the rest in 1 s.
  EXPECT_NEAR(stretched(0, 1, {{3, 1.5}, {1, 2}}), 2, 1e-12);
  // Factors of 1 change nothing.
  EXPECT_NEAR(stretched(0, 1, {{3, 1}, {1, 1}}), 1, 1e-12);
}

// The factor calibrate records makes the sim end the pair it timed when it ended: h2d of
// 1 ms alone issued first, d2h of 1.5 ms alone beside it.
TEST(CopyContention, TheBothWaysFactorReproducesThePairItWasMeasuredFrom) {
  for (const double f : {1.0, 1.5, 4.0, 20.0}) {
    const double together = stretched(0, 1.5, {{1, f}});  // the first ends at 1
    EXPECT_NEAR(both_ways_factor(1, 1.5, together), f, 1e-9) << f;
  }
  EXPECT_EQ(both_ways_factor(1, 0.5, 1.0), 1);  // the second fitted beside the first
  EXPECT_EQ(both_ways_factor(1, 1, 2.0), 100);  // one after the other: capped
  EXPECT_EQ(both_ways_factor(1, 1, 2.5), 100);  // slower than serial (noise): capped
  EXPECT_EQ(both_ways_factor(1, 1, 0.9), 1);    // faster than alone (noise): none
}

}  // namespace
}  // namespace memento::sim
