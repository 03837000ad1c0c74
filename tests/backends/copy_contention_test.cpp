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

}  // namespace
}  // namespace memento::sim
