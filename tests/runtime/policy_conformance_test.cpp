// The contract every eviction policy keeps, checked for each name in policy_names() (in the
// spirit of RMM's mr_ref_test): a policy added to the registry is covered without a line
// here. Policy-specific rankings and formulas are policies_test.cpp's.
//
// The contract: make_policy(name) makes the policy of that name and an unknown name is a
// ConfigError listing the valid ones; scores are never NaN nor -infinity (the runtime sorts
// by them); score and action are pure functions of (candidate, context); a use after the
// context's clock counts as staleness 0; the action is the possible one when only one is
// (unless the policy answers one action by design and leaves the rest to the runtime's
// fallback); and under a budget, with or without host memory, every tensor comes back
// bit-identical to the unlimited run.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cctype>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "memento/backends.hpp"
#include "memento/error.hpp"
#include "memento/policy.hpp"
#include "memento/runtime.hpp"
#include "runtime/test_ops.hpp"

namespace memento {
namespace {

constexpr std::size_t MiB = std::size_t{1} << 20;
constexpr double kInfinity = std::numeric_limits<double>::infinity();

/// Policies that answer one action whatever the candidate, by design: the runtime's fallback
/// does the rest (an offload without host memory discards; a discard without a recipe
/// offloads, or the tensor stays). Every other policy must ask for the possible action.
std::optional<EvictAction> fixed_action(const std::string& name) {
  if (name == "offload") return EvictAction::offload;
  if (name == "recompute") return EvictAction::discard;
  return std::nullopt;
}

/// Contexts at the edges: clock at 0 or later, with and without host memory, link rates
/// unknown, one-sided or known, with and without a measured stall.
std::vector<PolicyContext> edge_contexts() {
  std::vector<PolicyContext> out;
  for (std::uint64_t now : {std::uint64_t{0}, std::uint64_t{1000}})
    for (bool host : {false, true})
      for (auto [d2h, h2d] : {std::pair{0.0, 0.0}, std::pair{25e9, 0.0}, std::pair{1e3, 1e3}})
        for (double stall : {0.0, 1e-2}) {
          PolicyContext ctx;
          ctx.now = now;
          ctx.host_pool_available = host;
          ctx.d2h_bandwidth = d2h;
          ctx.h2d_bandwidth = h2d;
          ctx.stall_per_offload = stall;
          out.push_back(ctx);
        }
  return out;
}

/// Candidates at the edges for `ctx`: one byte to SIZE_MAX, free to very dear recomputes,
/// with and without a recipe and evicted inputs, next use unknown, immediate or far off,
/// staleness 0 (used at now), 1 and the whole clock.
std::vector<EvictionCandidate> edge_candidates(const PolicyContext& ctx) {
  std::vector<EvictionCandidate> out;
  const std::uint64_t last[] = {ctx.now, ctx.now > 0 ? ctx.now - 1 : 0, 0};
  for (std::size_t bytes : {std::size_t{1}, std::size_t{4096}, std::size_t{1} << 30,
                            std::numeric_limits<std::size_t>::max()})
    for (bool recipe : {false, true})
      for (double seconds : {0.0, 1e-12, 1e-3, 1e6})
        for (double inputs : {0.0, 1e-3})
          for (double next_use : {-1.0, 0.0, 1e-3, 1e6})
            for (std::uint64_t last_access : last)
              out.push_back({.bytes = bytes,
                             .has_recipe = recipe,
                             .recompute_seconds = seconds,
                             .evicted_inputs_seconds = inputs,
                             .next_use_seconds = next_use,
                             .last_access = last_access});
  return out;
}

std::string describe(const EvictionCandidate& c, const PolicyContext& ctx) {
  return fmt::format(
      "bytes {} recipe {} recompute {} inputs {} next use {} last {} | now {} host {} d2h {} "
      "h2d {} stall {}",
      c.bytes, c.has_recipe, c.recompute_seconds, c.evicted_inputs_seconds, c.next_use_seconds,
      c.last_access, ctx.now, ctx.host_pool_available, ctx.d2h_bandwidth, ctx.h2d_bandwidth,
      ctx.stall_per_offload);
}

/// What a ConfigError for an unknown policy lists: every name, in the registry's order.
std::string accepted_list() {
  std::string out;
  for (const std::string& name : policy_names()) out += (out.empty() ? "" : ", ") + name;
  return out;
}

class PolicyConformance : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override { policy_ = make_policy(GetParam()); }

  /// Calls `check(candidate, context)` for every edge pair; stops at the first failure.
  template <typename Check>
  void for_each_edge(Check check) const {
    for (const PolicyContext& ctx : edge_contexts())
      for (const EvictionCandidate& c : edge_candidates(ctx)) {
        SCOPED_TRACE(describe(c, ctx));
        check(c, ctx);
        if (HasFailure()) return;
      }
  }

  std::unique_ptr<Policy> policy_;
};

TEST_P(PolicyConformance, MakePolicyMakesThePolicyOfThatName) {
  ASSERT_NE(policy_, nullptr);
  EXPECT_EQ(policy_->name(), GetParam());
}

TEST_P(PolicyConformance, NearMissesOfTheNameAreConfigErrorsListingIt) {
  // Names match exactly: no case folding, no trimming.
  std::string upper = GetParam();
  for (char& ch : upper) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  const std::vector<std::string> names = policy_names();
  for (const std::string& wrong : {upper, GetParam() + " ", " " + GetParam(), GetParam() + "?"}) {
    if (std::find(names.begin(), names.end(), wrong) != names.end()) continue;
    try {
      (void)make_policy(wrong);
      ADD_FAILURE() << "\"" << wrong << "\" made a policy";
    } catch (const ConfigError& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find("unknown policy \"" + wrong + "\""), std::string::npos) << msg;
      EXPECT_NE(msg.find("accepted: " + accepted_list()), std::string::npos) << msg;
    }
  }
}

TEST_P(PolicyConformance, ScoresAreNeverNaNNorMinusInfinity) {
  for_each_edge([&](const EvictionCandidate& c, const PolicyContext& ctx) {
    const double s = policy_->score(c, ctx);
    EXPECT_FALSE(std::isnan(s));
    EXPECT_NE(s, -kInfinity);
  });
}

TEST_P(PolicyConformance, ScoreAndActionArePureFunctionsOfTheirArguments) {
  // The same answer twice and from a fresh instance, to the bit: no hidden state, no
  // randomness, so the same program under the same budget evicts the same tensors.
  auto fresh = make_policy(GetParam());
  for_each_edge([&](const EvictionCandidate& c, const PolicyContext& ctx) {
    const auto bits = std::bit_cast<std::uint64_t>(policy_->score(c, ctx));
    EXPECT_EQ(std::bit_cast<std::uint64_t>(policy_->score(c, ctx)), bits);
    EXPECT_EQ(std::bit_cast<std::uint64_t>(fresh->score(c, ctx)), bits);
    const EvictAction action = policy_->action(c, ctx);
    EXPECT_EQ(policy_->action(c, ctx), action);
    EXPECT_EQ(fresh->action(c, ctx), action);
  });
}

TEST_P(PolicyConformance, AUseAfterTheClockCountsAsStalenessZero) {
  // The context's clock is a snapshot; a tensor touched since must not wrap around to a
  // huge staleness and jump the queue.
  for_each_edge([&](const EvictionCandidate& c, const PolicyContext& ctx) {
    if (c.last_access != ctx.now) return;
    EvictionCandidate later = c;
    later.last_access = ctx.now + 5;
    EXPECT_EQ(std::bit_cast<std::uint64_t>(policy_->score(later, ctx)),
              std::bit_cast<std::uint64_t>(policy_->score(c, ctx)));
    EXPECT_EQ(policy_->action(later, ctx), policy_->action(c, ctx));
  });
}

TEST_P(PolicyConformance, AsksForThePossibleActionWhenOnlyOneIs) {
  const std::optional<EvictAction> fixed = fixed_action(GetParam());
  for_each_edge([&](const EvictionCandidate& c, const PolicyContext& ctx) {
    const EvictAction action = policy_->action(c, ctx);
    if (fixed) {
      EXPECT_EQ(action, *fixed) << "a fixed-action policy answered otherwise";
    } else if (!ctx.host_pool_available && c.has_recipe) {
      EXPECT_EQ(action, EvictAction::discard) << "offload asked for without host memory";
    } else if (ctx.host_pool_available && !c.has_recipe) {
      EXPECT_EQ(action, EvictAction::offload) << "discard asked for without a recipe";
    }
  });
}

struct ChainRun {
  std::vector<std::vector<unsigned char>> outputs;  // every activation of every step
  std::size_t peak_allocated = 0;
  std::size_t peak_reserved = 0;
  std::size_t evictions = 0;
};

/// Two training-like steps of a 24-op chain (each op reads the previous output and, every
/// third op, the one three back), every activation kept, then read back newest first. The
/// second step knows the first's use order, so next-use estimates (and the early offload)
/// are in play. The modelled rates make an op (~6 ms) outlast a copy out and back (~0.2 ms):
/// with host memory the bandwidth-aware policies offload too, not only recompute.
ChainRun run_chain(const std::string& policy, std::size_t budget, bool host_memory) {
  constexpr int kOps = 24;
  constexpr std::size_t kBytes = 2 * MiB;
  auto backend = make_host_backend({.capacity = 256 * MiB, .link_bandwidth = 0});
  CachingAllocator alloc(*backend, {.budget = budget});
  std::unique_ptr<PinnedHostPool> pool;
  if (host_memory) pool = std::make_unique<PinnedHostPool>(*backend, 64 * MiB);
  ChainRun run;
  {
    Runtime rt(*backend, alloc, pool.get(), make_policy(policy),
               {.matrix_flops = 1e9,
                .vector_flops = 1e9,
                .memory_bandwidth = 1e9,
                .d2h_bandwidth = 25e9,
                .h2d_bandwidth = 25e9});
    TensorId x = rt.constant(kBytes);
    auto* p = static_cast<float*>(rt.use(x));
    for (std::size_t i = 0; i < kBytes / 4; ++i) p[i] = static_cast<float>(i % 97) * 0.25f;
    rt.release(x);
    auto op = std::make_shared<testing::MixOp>();
    for (int step = 0; step < 2; ++step) {
      rt.begin_step();
      std::vector<TensorId> acts{x};
      for (int i = 1; i <= kOps; ++i) {
        std::vector<TensorId> in{acts.back()};
        if (i % 3 == 0) in.push_back(acts[static_cast<std::size_t>(i - 3)]);
        acts.push_back(rt.compute(op, in, kBytes, RngState{1234, std::uint64_t(i) << 32}));
      }
      for (auto it = acts.rbegin(); it + 1 != acts.rend(); ++it) {
        std::vector<unsigned char> host(kBytes);
        void* d = rt.use(*it);
        backend->copy_async(host.data(), d, kBytes, CopyKind::device_to_host, rt.compute_stream());
        backend->synchronize(rt.compute_stream());
        rt.release(*it);
        run.outputs.push_back(std::move(host));
      }
      for (auto it = acts.rbegin(); it + 1 != acts.rend(); ++it) rt.free(*it);
      const StepStats s = rt.end_step();
      run.evictions += s.counters.discards + s.counters.offloads;
    }
    rt.free(x);
    backend->synchronize_all();
  }
  run.peak_allocated = alloc.stats().allocated.peak;
  run.peak_reserved = alloc.stats().reserved.peak;
  return run;
}

TEST_P(PolicyConformance, UnderABudgetEvictedTensorsComeBackBitIdentical) {
  const ChainRun unlimited = run_chain(GetParam(), 0, true);
  ASSERT_EQ(unlimited.evictions, 0u);
  const std::size_t budget = unlimited.peak_allocated * 4 / 10;
  for (bool host_memory : {true, false}) {
    SCOPED_TRACE(host_memory ? "with host memory" : "without host memory");
    const ChainRun limited = run_chain(GetParam(), budget, host_memory);
    EXPECT_LE(limited.peak_reserved, budget);
    EXPECT_GT(limited.evictions, 0u);
    ASSERT_EQ(limited.outputs.size(), unlimited.outputs.size());
    for (std::size_t i = 0; i < limited.outputs.size(); ++i)
      ASSERT_EQ(limited.outputs[i], unlimited.outputs[i]) << "activation " << i << " differs";
  }
}

INSTANTIATE_TEST_SUITE_P(EveryPolicy, PolicyConformance, ::testing::ValuesIn(policy_names()),
                         [](const ::testing::TestParamInfo<std::string>& param) {
                           return param.param;  // policy names are identifiers
                         });

// The registry as a whole: the message names the wrong name and every valid one, in order.
TEST(PolicyRegistry, UnknownNameIsAConfigErrorListingTheValidNames) {
  try {
    (void)make_policy("fifo");
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("unknown policy \"fifo\"; accepted: " + accepted_list()), std::string::npos)
        << msg;
  }
  EXPECT_THROW((void)make_policy(""), ConfigError);
}

}  // namespace
}  // namespace memento
