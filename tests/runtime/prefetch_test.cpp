// The copy back on the host backend, where copies really run on their own threads over a
// throttled link: a prefetched tensor stays Prefetching until it is used, is bit-identical
// when used, and may be freed while its copy is in flight.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "memento/backends.hpp"
#include "memento/runtime.hpp"
#include "runtime/test_ops.hpp"

namespace memento {
namespace {

constexpr std::size_t MiB = std::size_t{1} << 20;
constexpr std::size_t kBytes = 2 * MiB;
constexpr int kLayers = 8;

std::vector<unsigned char> read(Backend& backend, Runtime& rt, TensorId id) {
  std::vector<unsigned char> out(kBytes);
  void* p = rt.use(id);
  backend.copy_async(out.data(), p, kBytes, CopyKind::device_to_host, rt.compute_stream());
  backend.synchronize(rt.compute_stream());
  rt.release(id);
  return out;
}

struct Step {
  std::vector<std::vector<unsigned char>> data;  // each activation as the backward read it
  std::vector<Residency> before_use;             // its state just before that read
  StepStats stats;
};

/// A forward chain from `x`, then a backward pass reading the activations newest first and
/// freeing each after its read (as autograd does). `free_at` (an index into the chain, or
/// -1) is freed before its read instead, whatever its state.
Step chain_step(Backend& backend, Runtime& rt, TensorId x, int free_at = -1) {
  auto op = std::make_shared<testing::MixOp>();
  rt.begin_step();
  std::vector<TensorId> acts;
  for (int i = 0; i < kLayers; ++i)
    acts.push_back(rt.compute(op, {i == 0 ? x : acts.back()}, kBytes, {5, std::uint64_t(i)}));
  Step s;
  for (int i = kLayers - 1; i >= 0; --i) {
    s.before_use.push_back(rt.state(acts[static_cast<std::size_t>(i)]));
    if (i == free_at) {
      rt.free(acts[static_cast<std::size_t>(i)]);
      s.data.emplace_back();
      continue;
    }
    s.data.push_back(read(backend, rt, acts[static_cast<std::size_t>(i)]));
    rt.free(acts[static_cast<std::size_t>(i)]);
  }
  s.stats = rt.end_step();
  return s;
}

struct Fixture {
  std::unique_ptr<Backend> backend =
      make_host_backend({.capacity = 256 * MiB, .link_bandwidth = 400e6});  // 5 ms a copy
  CachingAllocator alloc;
  PinnedHostPool pool;
  Runtime rt;
  TensorId x;
  explicit Fixture(std::size_t budget)
      : alloc(*backend, {.budget = budget}),
        pool(*backend, 64 * MiB),
        rt(*backend, alloc, &pool, make_policy("offload"),
           {.prefetch_lookahead_bytes = 2 * kBytes}),
        x(rt.constant(kBytes)) {
    auto* p = static_cast<float*>(rt.use(x));
    for (std::size_t i = 0; i < kBytes / 4; ++i) p[i] = static_cast<float>(i % 101) * 0.5f;
    rt.release(x);
  }
};

TEST(Prefetch, CopiesBackStayPrefetchingUntilUsedAndAreBitIdentical) {
  Fixture unlimited(0);
  Step want = chain_step(*unlimited.backend, unlimited.rt, unlimited.x);

  Fixture f(5 * kBytes);  // x, a few activations, the read's working set
  Step first = chain_step(*f.backend, f.rt, f.x);
  Step second = chain_step(*f.backend, f.rt, f.x);
  EXPECT_GT(first.stats.counters.offloads, 0u);
  EXPECT_GT(second.stats.prefetches_ahead, 0u);
  int prefetching = 0;
  for (Residency r : second.before_use) prefetching += r == Residency::prefetching;
  EXPECT_GT(prefetching, 0) << "no copy back was issued ahead of its use";
  EXPECT_EQ(first.data, want.data);
  EXPECT_EQ(second.data, want.data);
  EXPECT_LE(second.stats.peak_reserved, 5 * kBytes);
}

TEST(Prefetch, ATensorFreedWhileItsCopyBackRunsIsSafe) {
  Fixture f(5 * kBytes);
  (void)chain_step(*f.backend, f.rt, f.x);
  Step probe = chain_step(*f.backend, f.rt, f.x);
  // The first activation the backward pass found already Prefetching.
  int index = -1;
  for (std::size_t k = 0; k < probe.before_use.size(); ++k)
    if (probe.before_use[k] == Residency::prefetching) {
      index = kLayers - 1 - static_cast<int>(k);
      break;
    }
  ASSERT_GE(index, 0) << "the prefetcher issued nothing ahead";
  Step s = chain_step(*f.backend, f.rt, f.x, index);
  EXPECT_EQ(s.before_use[static_cast<std::size_t>(kLayers - 1 - index)], Residency::prefetching);
  // Everything but x went back: no block of the freed tensor leaked.
  f.backend->synchronize_all();
  EXPECT_EQ(f.alloc.stats().live_blocks.current, 1u);
}

}  // namespace
}  // namespace memento
