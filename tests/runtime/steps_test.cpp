// checkpoint(), steps and the prefetcher.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "memento/backends.hpp"
#include "memento/error.hpp"
#include "memento/runtime.hpp"
#include "runtime/test_ops.hpp"

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

/// One training-like step on sim: a forward chain whose activations are all kept, then a
/// backward pass that uses them newest first, each followed by a gradient op.
StepStats sim_step(Runtime& rt, int layers, std::size_t bytes) {
  // Each layer computes long enough (~12 ms on an A100's FP32 rate) to hide one 256 MiB
  // copy over PCIe (~11 ms).
  auto op = std::make_shared<testing::MixOp>(2.3e11);
  rt.begin_step();
  std::vector<TensorId> acts{rt.constant(bytes)};
  for (int i = 0; i < layers; ++i)
    acts.push_back(rt.compute(op, {acts.back()}, bytes, {7, std::uint64_t(i)}));
  TensorId grad = rt.compute(op, {acts.back()}, bytes, {8, 0});
  for (auto it = acts.rbegin(); it != acts.rend(); ++it) {
    TensorId next = rt.compute(op, {grad, *it}, bytes, {9, *it});
    rt.free(grad);
    grad = next;
  }
  rt.free(grad);
  StepStats s = rt.end_step();
  for (auto it = acts.rbegin(); it != acts.rend(); ++it) rt.free(*it);
  return s;
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
  // Step time is not compared: copies back issued ahead still queue behind the allocator's
  // host synchronisation under pressure (see docs/DESIGN.md, "Known limits").
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
