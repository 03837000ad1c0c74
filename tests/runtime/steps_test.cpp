// checkpoint(), steps and the prefetcher.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "memento/backends.hpp"
#include "memento/error.hpp"
#include "memento/runtime.hpp"
#include "runtime/test_ops.hpp"
#include "workload/chain_step.hpp"

namespace memento {
namespace {

constexpr std::size_t MiB = std::size_t{1} << 20;

std::vector<unsigned char> read(Backend& backend, Runtime& rt, TensorId id, std::size_t n) {
  std::vector<unsigned char> out(n);
  void* p = rt.use(id);
  backend.copy_async(out.data(), p, n, CopyKind::device_to_host, rt.compute_stream());
  backend.synchronize(rt.compute_stream());
  rt.release(id);
  return out;
}

TEST(Checkpoint, DiscardsTheSegmentsActivationsAndKeepsItsOutputs) {
  auto backend = make_host_backend({.capacity = 128 * MiB, .link_bandwidth = 0});
  CachingAllocator alloc(*backend);
  Runtime rt(*backend, alloc, nullptr, make_policy("lru"));
  auto op = std::make_shared<testing::MixOp>();
  TensorId x = rt.constant(MiB);
  std::memset(rt.use(x), 0x3c, MiB);
  rt.release(x);
  // Reference without checkpointing.
  TensorId ra = rt.compute(op, {x}, MiB, {1, 1});
  TensorId rb = rt.compute(op, {ra}, MiB, {1, 2});
  TensorId rc = rt.compute(op, {rb}, MiB, {1, 3});
  auto want_a = read(*backend, rt, ra, MiB);
  auto want_c = read(*backend, rt, rc, MiB);

  TensorId a = 0;
  TensorId b = 0;
  auto outputs = rt.checkpoint(
      [&](const std::vector<TensorId>& in) {
        a = rt.compute(op, {in[0]}, MiB, {1, 1});
        b = rt.compute(op, {a}, MiB, {1, 2});
        return std::vector<TensorId>{rt.compute(op, {b}, MiB, {1, 3})};
      },
      {x});
  ASSERT_EQ(outputs.size(), 1u);
  EXPECT_EQ(rt.state(a), Residency::discarded);
  EXPECT_EQ(rt.state(b), Residency::discarded);
  EXPECT_EQ(rt.state(outputs[0]), Residency::resident);
  EXPECT_EQ(rt.state(x), Residency::resident);  // an input, not produced inside
  EXPECT_EQ(read(*backend, rt, outputs[0], MiB), want_c);
  EXPECT_EQ(read(*backend, rt, a, MiB), want_a);  // recomputed on access
  EXPECT_EQ(rt.counters().recomputes, 1u);
  for (TensorId id : {outputs[0], b, a, rc, rb, ra, x}) rt.free(id);
}

/// workload::chain_step on sim with MixOp layers. By default each layer computes long
/// enough (~12 ms on an A100's FP32 rate) to hide one 256 MiB copy over PCIe (~11 ms).
StepStats sim_step(Runtime& rt, int layers, std::size_t bytes, double flops = 2.3e11) {
  return workload::chain_step(rt, std::make_shared<testing::MixOp>(flops), layers, bytes);
}

TEST(Steps, ThePrefetcherCopiesBackAheadInTheSecondStep) {
  auto backend = make_sim_backend(find_device_profile("a100-40gb"));
  constexpr std::size_t kBytes = 256 * MiB;
  CachingAllocator alloc(*backend, {.budget = 12 * kBytes});
  PinnedHostPool pool(*backend, std::size_t{64} << 30);
  Runtime rt(*backend, alloc, &pool, make_policy("offload"),
             {.prefetch_lookahead_bytes = 4 * kBytes});
  StepStats first = sim_step(rt, 24, kBytes);
  StepStats second = sim_step(rt, 24, kBytes);
  EXPECT_GT(first.counters.offloads, 0u);
  EXPECT_EQ(first.prefetches_ahead, 0u);  // nothing learnt yet
  EXPECT_GT(second.prefetches_ahead, 0u);
  EXPECT_GE(second.counters.bytes_prefetched, second.prefetches_ahead * kBytes);
  EXPECT_LE(second.peak_reserved, 12 * kBytes);
  EXPECT_LE(first.peak_reserved, 12 * kBytes);
}

TEST(Steps, ALongCopyBackStartsEarlyEnoughToArriveInTime) {
  // A 1 GiB activation offloaded at the start of the forward (43 ms back over PCIe) and read
  // last in the backward, after 40 short layers (~2 ms each, forward and backward) whose
  // uses touch far more than the prefetcher's 16 MiB lookahead in bytes: only a lookahead
  // in time starts its copy back soon enough. Without history (the first step) the
  // backward waits for the whole copy.
  auto backend = make_sim_backend(find_device_profile("a100-40gb"));
  CachingAllocator alloc(*backend);
  PinnedHostPool pool(*backend, std::size_t{4} << 30);
  Runtime rt(*backend, alloc, &pool, make_policy("lru"), {.prefetch_lookahead_bytes = 16 * MiB});
  auto op = std::make_shared<testing::MixOp>(4e10);
  TensorId x = rt.constant(MiB);
  auto step = [&] {
    rt.begin_step();
    TensorId big = rt.compute(op, {x}, std::size_t{1} << 30, {1, 0});
    EXPECT_GT(rt.evict_now(big, EvictAction::offload), 0u);
    std::vector<TensorId> acts{rt.compute(op, {x}, 8 * MiB, {1, 1})};
    for (std::uint64_t i = 2; i <= 40; ++i)
      acts.push_back(rt.compute(op, {acts.back()}, 8 * MiB, {1, i}));
    for (auto it = acts.rbegin(); it != acts.rend(); ++it) {  // a backward as long
      rt.free(rt.compute(op, {*it}, 8 * MiB, {2, *it}));
      rt.free(*it);
    }
    (void)rt.use(big);
    rt.release(big);
    rt.free(big);
    return rt.end_step();
  };
  const StepStats first = step();
  const StepStats second = step();
  ASSERT_TRUE(first.stalled_seconds && second.stalled_seconds);
  EXPECT_GT(*first.stalled_seconds, 0.03);  // the whole copy, less the last layer
  EXPECT_GT(second.prefetches_ahead, 0u);
  EXPECT_LT(*second.stalled_seconds, 0.001);
  rt.free(x);
}

/// The unlimited step of sim_step on a fresh runtime: its time and peak.
StepStats unlimited_sim_step(double flops) {
  auto backend = make_sim_backend(find_device_profile("a100-40gb"));
  CachingAllocator alloc(*backend);
  Runtime rt(*backend, alloc, nullptr, make_policy("lru"));
  (void)sim_step(rt, 24, 256 * MiB, flops);
  return sim_step(rt, 24, 256 * MiB, flops);
}

TEST(Steps, EarlyOffloadsHideTheCopiesBehindCompute) {
  // Layers long enough to hide a copy: once the first step has shown which activations
  // must go, later steps offload them right after their last forward use and copy them
  // back ahead of the backward pass, so the compute stream never waits for a copy.
  const StepStats base = unlimited_sim_step(2.3e11);
  auto backend = make_sim_backend(find_device_profile("a100-40gb"));
  const std::size_t budget = base.peak_reserved / 2;
  CachingAllocator alloc(*backend, {.budget = budget});
  PinnedHostPool pool(*backend, std::size_t{64} << 30);
  Runtime rt(*backend, alloc, &pool, make_policy("offload"));
  StepStats first = sim_step(rt, 24, 256 * MiB);
  StepStats later = sim_step(rt, 24, 256 * MiB);
  later = sim_step(rt, 24, 256 * MiB);
  EXPECT_EQ(first.counters.early_offloads, 0u);
  EXPECT_GT(later.counters.early_offloads, 0u);
  EXPECT_EQ(later.counters.offloads, later.counters.early_offloads) << "pressure offloads left";
  ASSERT_TRUE(later.stalled_seconds.has_value());
  EXPECT_LT(*later.stalled_seconds, 0.01 * later.seconds);
  EXPECT_LT(later.seconds, first.seconds);
  EXPECT_LE(later.peak_reserved, budget);
  EXPECT_LE(first.peak_reserved, budget);
}

TEST(Steps, AutoRecomputesWhenTheLinkCannotCarryTheOffloads) {
  // Layers three times shorter than a copy: offloads stall the step, which auto measures
  // and answers by recomputing instead; plain offload keeps stalling.
  const double flops = 0.77e11;
  const StepStats base = unlimited_sim_step(flops);
  const std::size_t budget = base.peak_reserved / 2;
  auto run = [&](const char* policy) {
    auto backend = make_sim_backend(find_device_profile("a100-40gb"));
    CachingAllocator alloc(*backend, {.budget = budget});
    PinnedHostPool pool(*backend, std::size_t{64} << 30);
    Runtime rt(*backend, alloc, &pool, make_policy(policy));
    StepStats s;
    for (int i = 0; i < 3; ++i) s = sim_step(rt, 24, 256 * MiB, flops);
    return s;
  };
  StepStats offload = run("offload");
  StepStats automatic = run("auto");
  ASSERT_TRUE(offload.stalled_seconds.has_value());
  EXPECT_GT(*offload.stalled_seconds, 0.1 * offload.seconds);
  EXPECT_EQ(automatic.counters.offloads, 0u);
  EXPECT_GT(automatic.counters.recomputes, 0u);
  EXPECT_LT(automatic.seconds, offload.seconds);
  EXPECT_LE(automatic.peak_reserved, budget);
}

TEST(Steps, AreDelimitedProperly) {
  auto backend = make_sim_backend(find_device_profile("l4"));
  CachingAllocator alloc(*backend);
  Runtime rt(*backend, alloc, nullptr, make_policy("recompute"));
  EXPECT_THROW((void)rt.end_step(), LogicError);
  rt.begin_step();
  EXPECT_THROW(rt.begin_step(), LogicError);
  StepStats s = rt.end_step();
  EXPECT_EQ(s.counters.discards, 0u);
}

}  // namespace
}  // namespace memento
