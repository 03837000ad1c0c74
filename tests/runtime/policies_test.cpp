#include "policies/policies.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "memento/error.hpp"
#include "memento/policy.hpp"
#include "runtime/tensor_registry.hpp"

namespace memento {
namespace {

/// An op that is never run here: a recipe only has to exist for a policy to see it.
class IdleOp final : public Op {
 public:
  std::string name() const override { return "idle"; }
  KernelCost cost(std::span<const std::size_t>, std::size_t out) const override {
    return {0, static_cast<double>(out), false};
  }
  Kernel make_kernel(std::span<const Storage>, Storage, const RngState&) const override {
    return Kernel{"idle", {}, [] {}, nullptr};
  }
};

TrackedTensor tensor(TensorId id, std::size_t bytes, std::uint64_t last_access, double seconds,
                     bool recipe) {
  TrackedTensor t;
  t.id = id;
  t.desc.bytes = bytes;
  t.desc.compute_seconds = seconds;
  if (recipe) t.desc.recipe = Recipe{std::make_shared<IdleOp>(), {}, RngState{}};
  t.last_access = last_access;
  return t;
}

constexpr std::uint64_t kNow = 100;

// Chosen so that every policy ranks them differently (staleness at kNow in brackets):
//   1: small, very stale [90], cheap          2: huge, fresh [10], expensive
//   3: mid-size, half stale [50], no recipe   4: tiny, just used [0], nearly free
std::vector<TrackedTensor> sample() {
  return {tensor(1, 100, 10, 1e-3, true), tensor(2, 1000, 90, 1e-1, true),
          tensor(3, 400, 50, 1e-3, false), tensor(4, 10, 100, 5e-6, true)};
}

PolicyContext context(bool host) {
  PolicyContext ctx;
  ctx.now = kNow;
  ctx.host_pool_available = host;
  return ctx;
}

/// Ids in eviction order: highest score first.
std::vector<TensorId> ranking(const Policy& p, const std::vector<TrackedTensor>& ts,
                              const PolicyContext& ctx) {
  std::vector<const TrackedTensor*> order;
  for (const auto& t : ts) order.push_back(&t);
  std::stable_sort(order.begin(), order.end(), [&](const auto* a, const auto* b) {
    return p.score(*a, ctx) > p.score(*b, ctx);
  });
  std::vector<TensorId> ids;
  for (const auto* t : order) ids.push_back(t->id);
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

TEST(Policies, LruClampsAccessesAfterNowToZeroStaleness) {
  auto p = make_lru_policy();
  EXPECT_EQ(p->score(tensor(1, 8, kNow + 5, 0, true), context(true)), 0.0);
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

TEST(Policies, RecomputeKeepsFreeOpsFinite) {
  auto p = make_recompute_policy();
  const double s = p->score(tensor(1, 10, 0, 0.0, true), context(true));
  EXPECT_TRUE(std::isfinite(s));
  EXPECT_DOUBLE_EQ(s, 100.0 * 10.0 / 1e-9);
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

TEST(Policies, EveryNameMakesThePolicyOfThatName) {
  const std::vector<std::string> expected{"lru", "largest", "recompute", "offload", "dtr"};
  EXPECT_EQ(policy_names(), expected);
  for (const auto& name : policy_names()) {
    auto p = make_policy(name);
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(p->name(), name);
  }
}

TEST(Policies, UnknownNameIsAConfigErrorListingTheValidNames) {
  try {
    (void)make_policy("fifo");
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("unknown policy \"fifo\"; accepted: lru, largest, recompute, offload, dtr"),
              std::string::npos)
        << msg;
  }
  EXPECT_THROW((void)make_policy(""), ConfigError);
  EXPECT_THROW((void)make_policy("LRU"), ConfigError);
}

TEST(Policies, ActionsHaveNames) {
  EXPECT_STREQ(to_string(EvictAction::discard), "discard");
  EXPECT_STREQ(to_string(EvictAction::offload), "offload");
}

}  // namespace
}  // namespace memento
