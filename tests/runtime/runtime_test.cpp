// The runtime end to end on real data (host) and on the model (sim): activations evicted
// under a budget come back bit-identical to an unlimited run.
#include "memento/runtime.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <random>
#include <vector>

#include "backend_types.hpp"
#include "memento/error.hpp"
#include "runtime/test_ops.hpp"

namespace memento {
namespace {

constexpr std::size_t MiB = std::size_t{1} << 20;

/// A fixed-rule policy for these tests: oldest first, with the action given. Written, like
/// any policy, against the public view (memento/policy.hpp) alone.
class OldestFirst final : public Policy {
 public:
  explicit OldestFirst(EvictAction action) : action_(action) {}
  std::string name() const override { return "oldest-first"; }
  double score(const EvictionCandidate& c, const PolicyContext& ctx) const override {
    return static_cast<double>(ctx.now - c.last_access);
  }
  EvictAction action(const EvictionCandidate&, const PolicyContext&) const override {
    return action_;
  }

 private:
  EvictAction action_;
};

struct ChainRun {
  std::vector<std::vector<unsigned char>> outputs;  // every activation, read back at the end
  std::size_t peak_reserved = 0;
  std::size_t peak_allocated = 0;
  RuntimeCounters counters;
};

/// A 24-op DAG (each op reads the previous output and, every third op, one from three
/// steps back), all activations kept as for backward, then read back newest first.
ChainRun run_chain(Backend& backend, std::size_t budget, std::unique_ptr<Policy> policy,
                   std::size_t host_budget, bool read_data) {
  constexpr int kOps = 24;
  constexpr std::size_t kBytes = 2 * MiB;
  CachingAllocator alloc(backend, {.budget = budget});
  std::unique_ptr<PinnedHostPool> pool;
  if (host_budget > 0) pool = std::make_unique<PinnedHostPool>(backend, host_budget);
  ChainRun run;
  {
    Runtime rt(backend, alloc, pool.get(), std::move(policy));
    TensorId x = rt.constant(kBytes);
    if (read_data) {
      auto* p = static_cast<float*>(rt.use(x));
      for (std::size_t i = 0; i < kBytes / 4; ++i) p[i] = static_cast<float>(i % 97) * 0.25f;
      rt.release(x);
    }
    std::vector<TensorId> acts{x};
    auto op = std::make_shared<testing::MixOp>();
    for (int i = 1; i <= kOps; ++i) {
      std::vector<TensorId> in{acts.back()};
      if (i % 3 == 0 && i >= 3) in.push_back(acts[static_cast<std::size_t>(i - 3)]);
      acts.push_back(rt.compute(op, in, kBytes, RngState{1234, std::uint64_t(i) << 32}));
    }
    for (auto it = acts.rbegin(); it != acts.rend(); ++it) {
      void* p = rt.use(*it);
      if (read_data) {
        std::vector<unsigned char> host(kBytes);
        backend.copy_async(host.data(), p, kBytes, CopyKind::device_to_host, rt.compute_stream());
        backend.synchronize(rt.compute_stream());
        run.outputs.push_back(std::move(host));
      }
      rt.release(*it);
    }
    backend.synchronize_all();
    run.counters = rt.counters();
    for (auto it = acts.rbegin(); it != acts.rend(); ++it) rt.free(*it);
  }
  AllocatorStats s = alloc.stats();
  run.peak_reserved = s.reserved.peak;
  run.peak_allocated = s.allocated.peak;
  return run;
}

TEST(RuntimeHost, EvictedActivationsComeBackBitIdentical) {
  auto backend = make_host_backend({.capacity = 256 * MiB, .link_bandwidth = 0});
  ChainRun unlimited =
      run_chain(*backend, 0, std::make_unique<OldestFirst>(EvictAction::discard), 0, true);
  ASSERT_EQ(unlimited.counters.discards + unlimited.counters.offloads, 0u);
  const std::size_t budget = unlimited.peak_allocated * 4 / 10;
  for (EvictAction action : {EvictAction::discard, EvictAction::offload}) {
    SCOPED_TRACE(to_string(action));
    ChainRun limited =
        run_chain(*backend, budget, std::make_unique<OldestFirst>(action), 64 * MiB, true);
    EXPECT_LE(limited.peak_reserved, budget);
    EXPECT_GT(limited.counters.discards + limited.counters.offloads, 0u);
    ASSERT_EQ(limited.outputs.size(), unlimited.outputs.size());
    for (std::size_t i = 0; i < limited.outputs.size(); ++i)
      ASSERT_EQ(limited.outputs[i], unlimited.outputs[i]) << "activation " << i << " differs";
  }
}

TEST(RuntimeHost, HostPoolExhaustedFallsBackToDiscard) {
  auto backend = make_host_backend({.capacity = 256 * MiB, .link_bandwidth = 0});
  ChainRun unlimited =
      run_chain(*backend, 0, std::make_unique<OldestFirst>(EvictAction::offload), 0, true);
  ChainRun limited = run_chain(*backend, unlimited.peak_allocated * 4 / 10,
                               std::make_unique<OldestFirst>(EvictAction::offload), 4 * MiB, true);
  EXPECT_GT(limited.counters.offload_fallbacks, 0u);
  EXPECT_GT(limited.counters.discards, 0u);
  EXPECT_GT(limited.counters.offloads, 0u);
  EXPECT_EQ(limited.outputs, unlimited.outputs);
}

TEST(RuntimeHost, UseWhileTheOffloadCopyIsInFlightWaitsForIt) {
  // 2 MiB over 50 MB/s: each offload copy takes ~40 ms, so uses race with it.
  auto backend = make_host_backend({.capacity = 256 * MiB, .link_bandwidth = 50e6});
  auto fast = make_host_backend({.capacity = 256 * MiB, .link_bandwidth = 0});
  ChainRun unlimited =
      run_chain(*fast, 0, std::make_unique<OldestFirst>(EvictAction::offload), 0, true);
  ChainRun limited =
      run_chain(*backend, unlimited.peak_allocated * 4 / 10,
                std::make_unique<OldestFirst>(EvictAction::offload), 128 * MiB, true);
  EXPECT_GT(limited.counters.offloads, 0u);
  EXPECT_EQ(limited.outputs, unlimited.outputs);
}

TEST(RuntimeHost, NothingEvictableEndsInOutOfMemoryWithFigures) {
  auto backend = make_host_backend({.capacity = 256 * MiB, .link_bandwidth = 0});
  CachingAllocator alloc(*backend, {.budget = 8 * MiB});
  Runtime rt(*backend, alloc, nullptr, std::make_unique<OldestFirst>(EvictAction::discard));
  TensorId a = rt.constant(4 * MiB);
  TensorId b = rt.constant(4 * MiB);
  try {
    (void)rt.constant(2 * MiB);
    FAIL() << "expected OutOfMemory";
  } catch (const OutOfMemory& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("unevictable 8.00 MiB"), std::string::npos) << msg;
    EXPECT_NE(msg.find("nothing left to evict"), std::string::npos) << msg;
  }
  rt.free(a);
  rt.free(b);
}

TEST(RuntimeSim, ChainFitsTheBudgetAndTakesModelledTime) {
  auto backend = make_sim_backend(find_device_profile("a100-40gb"));
  ChainRun unlimited =
      run_chain(*backend, 0, std::make_unique<OldestFirst>(EvictAction::discard), 0, false);
  for (EvictAction action : {EvictAction::discard, EvictAction::offload}) {
    double start = backend->now();
    ChainRun limited = run_chain(*backend, unlimited.peak_allocated * 4 / 10,
                                 std::make_unique<OldestFirst>(action), 64 * MiB, false);
    EXPECT_LE(limited.peak_reserved, unlimited.peak_allocated * 4 / 10);
    if (action == EvictAction::discard) {
      EXPECT_GT(limited.counters.recomputes, 0u);
    } else {
      EXPECT_GT(limited.counters.bytes_prefetched, 0u);
    }
    EXPECT_GT(backend->now(), start);
  }
}

}  // namespace
}  // namespace memento

namespace memento {
namespace {

/// A random DAG of mix ops; returns every tensor's bytes, read back in random order.
struct DagRun {
  std::vector<std::vector<unsigned char>> outputs;
  std::size_t peak_allocated = 0;
  std::size_t peak_reserved = 0;
};

DagRun run_dag(Backend& backend, std::uint64_t seed, std::size_t budget,
               std::unique_ptr<Policy> policy) {
  std::mt19937_64 rng(seed);
  CachingAllocator alloc(backend, {.budget = budget});
  PinnedHostPool pool(backend, 32 * MiB);
  DagRun run;
  {
    Runtime rt(backend, alloc, &pool, std::move(policy));
    std::vector<TensorId> tensors{rt.constant(MiB)};
    std::vector<std::size_t> bytes{MiB};
    auto* p = static_cast<float*>(rt.use(tensors[0]));
    for (std::size_t i = 0; i < MiB / 4; ++i) p[i] = static_cast<float>(i % 31);
    rt.release(tensors[0]);
    auto op = std::make_shared<testing::MixOp>();
    int ops = 10 + static_cast<int>(rng() % 10);
    for (int i = 0; i < ops; ++i) {
      std::vector<TensorId> in;
      int fan_in = 1 + static_cast<int>(rng() % 3);
      for (int k = 0; k < fan_in; ++k) in.push_back(tensors[rng() % tensors.size()]);
      std::size_t out = (1 + rng() % 8) * 256 * 1024;
      tensors.push_back(rt.compute(op, in, out, RngState{seed, rng()}));
      bytes.push_back(out);
    }
    std::vector<std::size_t> order(tensors.size());
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::shuffle(order.begin(), order.end(), rng);
    run.outputs.resize(tensors.size());
    for (std::size_t i : order) {
      void* d = rt.use(tensors[i]);
      run.outputs[i].resize(bytes[i]);
      backend.copy_async(run.outputs[i].data(), d, bytes[i], CopyKind::device_to_host,
                         rt.compute_stream());
      backend.synchronize(rt.compute_stream());
      rt.release(tensors[i]);
    }
    for (auto it = tensors.rbegin(); it != tensors.rend(); ++it) rt.free(*it);
  }
  run.peak_allocated = alloc.stats().allocated.peak;
  run.peak_reserved = alloc.stats().reserved.peak;
  return run;
}

TEST(RuntimeHost, RandomDagsUnderRandomBudgetsAndPoliciesMatchTheUnlimitedRun) {
  const std::uint64_t seed = testing::test_seed();
  std::mt19937_64 rng(seed);
  auto backend = make_host_backend({.capacity = 512 * MiB, .link_bandwidth = 0});
  auto names = policy_names();
  for (int trial = 0; trial < 4; ++trial) {
    std::uint64_t dag_seed = rng();
    DagRun unlimited = run_dag(*backend, dag_seed, 0, make_policy("lru"));
    // At least room for the largest op (3 inputs + output of 2 MiB) in 2 MiB segments.
    std::size_t floor = 12 * MiB;
    std::size_t budget = std::max(floor, unlimited.peak_allocated * (30 + rng() % 50) / 100);
    const std::string& name = names[rng() % names.size()];
    SCOPED_TRACE(::testing::Message() << "seed " << seed << " trial " << trial << " policy " << name
                                      << " budget " << budget);
    DagRun limited = run_dag(*backend, dag_seed, budget, make_policy(name));
    EXPECT_LE(limited.peak_reserved, budget);
    EXPECT_EQ(limited.outputs, unlimited.outputs);
  }
}

}  // namespace
}  // namespace memento
