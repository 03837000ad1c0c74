// Runtime::forget_recipes_reading: a tensor about to be overwritten in place (a parameter
// an optimizer step updates) stops being read by any recipe; the freed tensors that only
// kept it alive go, and live readers keep their data as plain tensors.
#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <vector>

#include "memento/backends.hpp"
#include "memento/error.hpp"
#include "memento/policy.hpp"
#include "memento/runtime.hpp"
#include "runtime/test_ops.hpp"

namespace memento {
namespace {

constexpr std::size_t MiB = std::size_t{1} << 20;

struct Fixture {
  std::unique_ptr<Backend> backend =
      make_host_backend({.capacity = 256 * MiB, .link_bandwidth = 0});
  CachingAllocator alloc{*backend};
  PinnedHostPool pool{*backend, 64 * MiB};
  Runtime rt{*backend, alloc, &pool, make_policy("lru")};
  std::shared_ptr<testing::MixOp> op = std::make_shared<testing::MixOp>();

  TensorId constant(float value) {
    TensorId id = rt.constant(MiB);
    fill(id, value);
    return id;
  }
  void fill(TensorId id, float value) {
    auto* p = static_cast<float*>(rt.use(id));
    for (std::size_t i = 0; i < MiB / 4; ++i) p[i] = value + static_cast<float>(i % 13);
    rt.release(id);
  }
  std::vector<unsigned char> read(TensorId id) {
    std::vector<unsigned char> out(MiB);
    void* d = rt.use(id);
    backend->copy_async(out.data(), d, MiB, CopyKind::device_to_host, rt.compute_stream());
    backend->synchronize(rt.compute_stream());
    rt.release(id);
    return out;
  }
  std::size_t allocated() const { return alloc.stats().allocated.current; }
};

TEST(ForgetRecipes, FreedReadersGoAndTheOverwrittenConstantsMemoryComesBack) {
  Fixture f;
  TensorId x = f.constant(1);
  TensorId w = f.constant(2);
  TensorId a = f.rt.compute(f.op, {x, w}, MiB);  // an activation reading the weight
  TensorId h = f.rt.compute(f.op, {a}, MiB);
  TensorId g = f.rt.compute(f.op, {h, x}, MiB);  // the weight's gradient: live
  const std::vector<unsigned char> g_data = f.read(g);
  f.rt.free(h);
  f.rt.free(a);
  // What an optimizer step does to the old version: freed, but g's recipe reads it through
  // h and a, so the runtime keeps it resident.
  f.rt.free(w);
  EXPECT_TRUE(f.rt.tracks(w));
  EXPECT_EQ(f.allocated(), 3 * MiB);  // x, w, g (a and h were discarded at free)

  f.rt.forget_recipes_reading(w);
  EXPECT_FALSE(f.rt.tracks(w));
  EXPECT_FALSE(f.rt.tracks(a));
  EXPECT_FALSE(f.rt.tracks(h));
  ASSERT_TRUE(f.rt.tracks(g));
  EXPECT_EQ(f.rt.state(g), Residency::resident);
  EXPECT_EQ(f.allocated(), 2 * MiB);  // x and g
  // g is a plain tensor now: it cannot be discarded, but it can be offloaded and back.
  EXPECT_EQ(f.rt.evict_now(g, EvictAction::discard), 0u);
  EXPECT_EQ(f.rt.evict_now(g, EvictAction::offload), MiB);
  EXPECT_EQ(f.read(g), g_data);
  EXPECT_EQ(f.rt.counters().recomputes, 0u);
  f.rt.free(g);
  f.rt.free(x);
  EXPECT_EQ(f.allocated(), 0u);
}

TEST(ForgetRecipes, ADiscardedLiveReaderIsRecomputedFromTheOldDataFirst) {
  Fixture f;
  TensorId w = f.constant(3);
  TensorId a = f.rt.compute(f.op, {w}, MiB);
  const std::vector<unsigned char> a_data = f.read(a);
  ASSERT_EQ(f.rt.evict_now(a, EvictAction::discard), MiB);
  f.rt.forget_recipes_reading(w);
  EXPECT_EQ(f.rt.state(a), Residency::resident);
  EXPECT_EQ(f.rt.counters().recomputes, 1u);
  EXPECT_TRUE(f.rt.tracks(w));  // not freed: it stays
  // The in-place update (written from the host here, so after the recompute has run).
  f.backend->synchronize_all();
  f.fill(w, 100);
  EXPECT_EQ(f.rt.evict_now(a, EvictAction::discard), 0u);
  EXPECT_EQ(f.read(a), a_data);  // the data from before the update
  f.rt.free(a);
  f.rt.free(w);
}

TEST(ForgetRecipes, OnlyFreedReadersPassItOn) {
  // a reads w and is live: it keeps its data, so b, which reads a, keeps its recipe. c
  // reads w through the freed d: it loses its recipe too.
  Fixture f;
  TensorId w = f.constant(4);
  TensorId a = f.rt.compute(f.op, {w}, MiB);
  TensorId b = f.rt.compute(f.op, {a}, MiB);
  TensorId d = f.rt.compute(f.op, {w}, MiB);
  TensorId c = f.rt.compute(f.op, {d}, MiB);
  f.rt.free(d);
  EXPECT_TRUE(f.rt.tracks(d));
  f.rt.forget_recipes_reading(w);
  EXPECT_FALSE(f.rt.tracks(d));
  EXPECT_EQ(f.rt.evict_now(a, EvictAction::discard), 0u);
  EXPECT_EQ(f.rt.evict_now(c, EvictAction::discard), 0u);
  const std::vector<unsigned char> b_data = f.read(b);
  EXPECT_EQ(f.rt.evict_now(b, EvictAction::discard), MiB);
  EXPECT_EQ(f.read(b), b_data);  // recomputed from a, which kept its data
  EXPECT_EQ(f.rt.counters().recomputes, 1u);
  for (TensorId t : {c, b, a, w}) f.rt.free(t);
  EXPECT_EQ(f.allocated(), 0u);
}

TEST(ForgetRecipes, UnknownIdIsALogicError) {
  Fixture f;
  EXPECT_THROW(f.rt.forget_recipes_reading(12345), LogicError);
}

}  // namespace
}  // namespace memento
