// Each built-in policy's own rules: its rankings, formulas and choice of action on hand-built
// candidates. The contract every policy shares (names, no NaN, determinism, the possible
// action, bit-identical data under a budget) is policy_conformance_test.cpp's.
#include "policies/policies.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "memento/policy.hpp"

namespace memento {
namespace {

EvictionCandidate tensor(std::size_t bytes, std::uint64_t last_access, double seconds,
                         bool recipe) {
  EvictionCandidate c;
  c.bytes = bytes;
  c.recompute_seconds = seconds;
  c.has_recipe = recipe;
  c.last_access = last_access;
  return c;
}

constexpr std::uint64_t kNow = 100;

// Chosen so that every policy ranks them differently (staleness at kNow in brackets); the
// ids are positions from 1:
//   1: small, very stale [90], cheap          2: huge, fresh [10], expensive
//   3: mid-size, half stale [50], no recipe   4: tiny, just used [0], nearly free
std::vector<EvictionCandidate> sample() {
  return {tensor(100, 10, 1e-3, true), tensor(1000, 90, 1e-1, true), tensor(400, 50, 1e-3, false),
          tensor(10, 100, 5e-6, true)};
}

PolicyContext context(bool host) {
  PolicyContext ctx;
  ctx.now = kNow;
  ctx.host_pool_available = host;
  return ctx;
}

/// Ids (positions from 1) in eviction order: highest score first.
std::vector<TensorId> ranking(const Policy& p, const std::vector<EvictionCandidate>& ts,
                              const PolicyContext& ctx) {
  std::vector<TensorId> ids(ts.size());
  for (std::size_t i = 0; i < ids.size(); ++i) ids[i] = i + 1;
  std::stable_sort(ids.begin(), ids.end(), [&](TensorId a, TensorId b) {
    return p.score(ts[a - 1], ctx) > p.score(ts[b - 1], ctx);
  });
  return ids;
}

/// Action for each tensor of sample(), in sample order.
std::vector<EvictAction> actions(const Policy& p, bool host) {
  std::vector<EvictAction> out;
  for (const auto& t : sample()) out.push_back(p.action(t, context(host)));
  return out;
}

constexpr EvictAction D = EvictAction::discard;
constexpr EvictAction O = EvictAction::offload;
using Ids = std::vector<TensorId>;
using Actions = std::vector<EvictAction>;

TEST(Policies, LruEvictsTheStalestAndOffloadsWhenHostMemoryIsThere) {
  auto p = make_lru_policy();
  EXPECT_EQ(ranking(*p, sample(), context(true)), (Ids{1, 3, 2, 4}));
  EXPECT_EQ(actions(*p, true), (Actions{O, O, O, O}));
  EXPECT_EQ(actions(*p, false), (Actions{D, D, D, D}));
}

TEST(Policies, LargestEvictsTheBiggestAndOffloadsWhenHostMemoryIsThere) {
  auto p = make_largest_policy();
  EXPECT_EQ(ranking(*p, sample(), context(true)), (Ids{2, 3, 1, 4}));
  EXPECT_EQ(actions(*p, true), (Actions{O, O, O, O}));
  EXPECT_EQ(actions(*p, false), (Actions{D, D, D, D}));
}

TEST(Policies, RecomputeRanksBytesTimesStalenessPerSecondAndAlwaysDiscards) {
  auto p = make_recompute_policy();
  // 1: 90*100/1e-3 = 9e6; 2: 10*1000/0.1 = 1e5; 4: staleness 0 -> 0; 3: no recipe -> -1.
  EXPECT_EQ(ranking(*p, sample(), context(true)), (Ids{1, 2, 4, 3}));
  EXPECT_EQ(p->score(sample()[2], context(true)), -1.0);
  EXPECT_EQ(actions(*p, true), (Actions{D, D, D, D}));
  EXPECT_EQ(actions(*p, false), (Actions{D, D, D, D}));
}

TEST(Policies, RecomputeFloorsTheSecondsOfFreeOps) {
  auto p = make_recompute_policy();
  EXPECT_DOUBLE_EQ(p->score(tensor(10, 0, 0.0, true), context(true)), 100.0 * 10.0 / 1e-9);
}

TEST(Policies, OffloadRanksLikeLruAndAlwaysOffloads) {
  auto p = make_offload_policy();
  EXPECT_EQ(ranking(*p, sample(), context(true)), (Ids{1, 3, 2, 4}));
  EXPECT_EQ(actions(*p, true), (Actions{O, O, O, O}));
  EXPECT_EQ(actions(*p, false), (Actions{O, O, O, O}));
}

TEST(Policies, DtrEvictsTheSmallestCostPerByteTimesStaleness) {
  auto p = make_dtr_policy();
  // h: 3: 1e-3/(400*50) = 5e-8; 1: 1e-3/(100*90) ~ 1.1e-7; 4: 5e-6/(10*max(1,0)) = 5e-7;
  //    2: 0.1/(1000*10) = 1e-5.
  EXPECT_EQ(ranking(*p, sample(), context(true)), (Ids{3, 1, 4, 2}));
  EXPECT_DOUBLE_EQ(p->score(sample()[3], context(true)), -5e-7);
  // Discard what has a recipe, offload the rest, whatever the host pool says.
  EXPECT_EQ(actions(*p, true), (Actions{D, D, O, D}));
  EXPECT_EQ(actions(*p, false), (Actions{D, D, O, D}));
}

TEST(Policies, DtrCountsTheEvictedNeighbourhoodARecomputeWouldRerun) {
  auto p = make_dtr_policy();
  std::vector<EvictionCandidate> ts = sample();
  // Tensor 3 leads alone; 2 ms of discarded inputs behind it triple its h, past 1's.
  ts[2].evicted_inputs_seconds = 2e-3;
  EXPECT_DOUBLE_EQ(p->score(ts[2], context(true)), -(3e-3 / (400.0 * 50)));
  EXPECT_EQ(ranking(*p, ts, context(true)), (Ids{1, 3, 4, 2}));
}

// Tensors for the bandwidth-aware policies: 1000 B/s each way, so a round trip of b bytes
// takes b / 500 seconds.
constexpr double kBandwidth = 1e3;

EvictionCandidate timed(std::size_t bytes, std::uint64_t last_access, double seconds, bool recipe,
                        double next_use) {
  EvictionCandidate c = tensor(bytes, last_access, seconds, recipe);
  c.next_use_seconds = next_use;
  return c;
}

PolicyContext link(bool host, double d2h = kBandwidth, double h2d = kBandwidth) {
  PolicyContext ctx = context(host);
  ctx.d2h_bandwidth = d2h;
  ctx.h2d_bandwidth = h2d;
  return ctx;
}

std::vector<EvictAction> actions(const Policy& p, const std::vector<EvictionCandidate>& ts,
                                 const PolicyContext& ctx) {
  std::vector<EvictAction> out;
  for (const auto& t : ts) out.push_back(p.action(t, ctx));
  return out;
}

// Round trip [next use] per tensor:
//   1: 2 s [5] hideable, recipe        2: 8 s [10] hideable, no recipe
//   3: 4 s [1] exposed, recipe         4: 1 s [unknown], recipe, cheapest per byte
//   5: 6 s [1] exposed, no recipe      6: 0.2 s [unknown], no recipe
std::vector<EvictionCandidate> capuchin_sample() {
  return {timed(1000, 0, 1e-3, true, 5),  timed(4000, 0, 1e-3, false, 10),
          timed(2000, 0, 1e-2, true, 1),  timed(500, 0, 1e-4, true, -1),
          timed(3000, 0, 1e-3, false, 1), timed(100, 0, 1e-3, false, -1)};
}

TEST(Policies, CapuchinOffloadsHideableCopiesLargestFirstThenRecomputesPerSecond) {
  auto p = make_capuchin_policy();
  const auto ts = capuchin_sample();
  // Hideable by bytes (2, 1); recipes by bytes per second (4: 5e6, 3: 2e5); the rest by
  // bytes (5, 6). An unknown next use (4, 6) is never hideable, however short the copy.
  EXPECT_EQ(ranking(*p, ts, link(true)), (Ids{2, 1, 4, 3, 5, 6}));
  EXPECT_DOUBLE_EQ(p->score(ts[0], link(true)), 1e32 * 1000);
  EXPECT_DOUBLE_EQ(p->score(ts[2], link(true)), 2000 / 1e-2);
  EXPECT_DOUBLE_EQ(p->score(ts[4], link(true)), -1.0 / 3000);
  EXPECT_EQ(actions(*p, ts, link(true)), (Actions{O, O, D, D, O, O}));
}

TEST(Policies, CapuchinCountsACopyThatExactlyFillsTheGapAsHidden) {
  auto p = make_capuchin_policy();
  const auto t = timed(1000, 0, 1e-3, true, 2.0);  // round trip 1 s + 1 s
  EXPECT_EQ(p->action(t, link(true)), O);
  EXPECT_DOUBLE_EQ(p->score(t, link(true)), 1e32 * 1000);
}

TEST(Policies, CapuchinHidesNothingWithoutHostPoolOrKnownBandwidth) {
  auto p = make_capuchin_policy();
  const auto ts = capuchin_sample();
  for (const auto& ctx : {link(false), link(true, 0, kBandwidth), link(true, kBandwidth, 0)}) {
    EXPECT_EQ(ranking(*p, ts, ctx), (Ids{4, 1, 3, 2, 5, 6}));
    EXPECT_DOUBLE_EQ(p->score(ts[0], ctx), 1000 / 1e-3);
    EXPECT_DOUBLE_EQ(p->score(ts[1], ctx), -1.0 / 4000);
    // Without a recipe, offload is all that is left (the runtime keeps it if it cannot).
    EXPECT_EQ(actions(*p, ts, ctx), (Actions{D, O, D, D, O, O}));
  }
}

TEST(Policies, CapuchinKeepsFreeOpsFiniteAndBelowHideableOnes) {
  auto p = make_capuchin_policy();
  const double free_op = p->score(timed(1000, 0, 0.0, true, -1), link(true));
  EXPECT_DOUBLE_EQ(free_op, 1000 / 1e-12);
  EXPECT_LT(free_op, p->score(timed(1, 0, 1.0, true, 1.0), link(true)));
}

// Round trips are 2 s for 1000 B and 4 s for 2000 B. Per tensor, [staleness at kNow],
// offload cost | recompute cost -> action, score:
//   1: [0]   max(0, 2 - 5) = 0 | 1   -> offload, 1000 / 1e-9
//   2: [0]   2 - 1 = 1         | 0.5 -> discard, 1000 / 0.5
//   3: [10]  2 (unknown use)   | inf -> offload, 1000 / 2 * (1 + log 11)
//   4: [100] 2 (unknown use)   | 2   -> tie: offload, 1000 / 2 * (1 + log 101)
//   5: [0]   4 - 0 = 4         | 1e-3 -> discard, 2000 / 1e-3
//   6: [0]   2 - 1 = 1         | 3   -> offload, 1000 / 1
std::vector<EvictionCandidate> auto_sample() {
  return {timed(1000, kNow, 1.0, true, 5),      timed(1000, kNow, 0.5, true, 1),
          timed(1000, kNow - 10, 0, false, -1), timed(1000, 0, 2.0, true, -1),
          timed(2000, kNow, 1e-3, true, 0),     timed(1000, kNow, 3.0, true, 1)};
}

TEST(Policies, AutoTakesTheCheaperWayOutAndRanksBytesPerSecondLost) {
  auto p = make_auto_policy();
  const auto ts = auto_sample();
  const auto ctx = link(true);
  // Staleness lifts 4 (2807) over 2 (2000), and 4 over 3 at the same cost.
  EXPECT_EQ(ranking(*p, ts, ctx), (Ids{1, 5, 4, 2, 3, 6}));
  EXPECT_EQ(actions(*p, ts, ctx), (Actions{O, D, O, O, D, O}));
  EXPECT_DOUBLE_EQ(p->score(ts[0], ctx), 1000 / 1e-9);
  EXPECT_DOUBLE_EQ(p->score(ts[1], ctx), 1000 / (0.5 + 1e-9));
  EXPECT_DOUBLE_EQ(p->score(ts[2], ctx), 1000 / (2 + 1e-9) * (1 + std::log1p(10.0)));
  EXPECT_DOUBLE_EQ(p->score(ts[3], ctx), 1000 / (2 + 1e-9) * (1 + std::log1p(100.0)));
  EXPECT_DOUBLE_EQ(p->score(ts[4], ctx), 2000 / (1e-3 + 1e-9));
  EXPECT_DOUBLE_EQ(p->score(ts[5], ctx), 1000 / (1 + 1e-9));
}

TEST(Policies, AutoRecomputesWhenOffloadingIsImpossibleOrUnpriced) {
  auto p = make_auto_policy();
  const auto ts = auto_sample();
  for (const auto& ctx : {link(false), link(true, 0, kBandwidth), link(true, kBandwidth, 0)}) {
    // Every offload costs infinity: recipes are discarded at their compute cost; 3 has no
    // way out at all, scores 0 and keeps the tie rule (offload; the runtime keeps it).
    EXPECT_EQ(ranking(*p, ts, ctx), (Ids{5, 4, 2, 1, 6, 3}));
    EXPECT_EQ(actions(*p, ts, ctx), (Actions{D, D, O, D, D, D}));
    EXPECT_DOUBLE_EQ(p->score(ts[0], ctx), 1000 / (1 + 1e-9));
    EXPECT_EQ(p->score(ts[2], ctx), 0.0);
    EXPECT_DOUBLE_EQ(p->score(ts[5], ctx), 1000 / (3 + 1e-9));
  }
}

TEST(Policies, TheRegistryListsTheSevenBuiltInsInOrder) {
  const std::vector<std::string> expected{"lru", "largest",  "recompute", "offload",
                                          "dtr", "capuchin", "auto"};
  EXPECT_EQ(policy_names(), expected);
}

TEST(Policies, ActionsHaveNames) {
  EXPECT_STREQ(to_string(EvictAction::discard), "discard");
  EXPECT_STREQ(to_string(EvictAction::offload), "offload");
}

}  // namespace
}  // namespace memento
