#include "runtime/tensor_registry.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <memory>

#include "memento/error.hpp"

namespace memento {
namespace {

/// An op that is never run here: the registry only stores it.
class NamedOp final : public Op {
 public:
  std::string name() const override { return "named"; }
  KernelCost cost(std::span<const std::size_t>, std::size_t out) const override {
    return {0, static_cast<double>(out), false};
  }
  Kernel make_kernel(std::span<const Storage>, Storage, const RngState&) const override {
    return Kernel{"named", {}, [] {}, nullptr};
  }
};

TensorDesc activation(std::size_t bytes, std::vector<TensorId> inputs) {
  TensorDesc d;
  d.bytes = bytes;
  d.recipe = Recipe{std::make_shared<NamedOp>(), std::move(inputs), RngState{7, 0}};
  return d;
}

TensorDesc constant(std::size_t bytes) {
  TensorDesc d;
  d.bytes = bytes;
  d.evictable = false;
  return d;
}

TEST(TensorRegistry, AddsResidentTensorsWithFreshIdsAndClock) {
  TensorRegistry reg;
  int storage = 0;
  TensorId x = reg.add(constant(64), &storage);
  TensorId y = reg.add(activation(128, {x}), nullptr);
  EXPECT_NE(x, 0u);
  EXPECT_NE(x, y);
  EXPECT_EQ(reg.at(x).state, Residency::resident);
  EXPECT_EQ(reg.at(x).device, &storage);
  EXPECT_LT(reg.at(x).last_access, reg.at(y).last_access);
  std::uint64_t t = reg.touch(x);
  EXPECT_GT(t, reg.at(y).last_access);
  EXPECT_EQ(reg.bytes_in(Residency::resident), 192u);
  EXPECT_THROW((void)reg.at(999), LogicError);
}

TEST(TensorRegistry, RejectsEmptyTensorsAndRecipesNamingUnknownInputs) {
  TensorRegistry reg;
  EXPECT_THROW(reg.add(constant(0), nullptr), LogicError);
  EXPECT_THROW(reg.add(activation(8, {12345}), nullptr), LogicError);
  EXPECT_EQ(reg.size(), 0u);
}

TEST(TensorRegistry, OnlyResidentUnpinnedEvictableTensorsAreCandidates) {
  TensorRegistry reg;
  TensorId x = reg.add(constant(64), nullptr);
  TensorId a = reg.add(activation(64, {x}), nullptr);
  TensorId b = reg.add(activation(64, {a}), nullptr);
  TensorId c = reg.add(activation(64, {b}), nullptr);
  reg.pin(b);
  reg.move(c, Residency::discarded);
  auto candidates = reg.eviction_candidates();
  ASSERT_EQ(candidates.size(), 1u);
  EXPECT_EQ(candidates[0]->id, a);
  reg.unpin(b);
  EXPECT_EQ(reg.eviction_candidates().size(), 2u);
  EXPECT_THROW(reg.unpin(b), LogicError);
}

TEST(TensorRegistry, EvictionRulesAreEnforced) {
  TensorRegistry reg;
  TensorId x = reg.add(constant(64), nullptr);
  TensorDesc plain;
  plain.bytes = 64;  // evictable, but no recipe
  TensorId p = reg.add(plain, nullptr);
  TensorId a = reg.add(activation(64, {x}), nullptr);

  EXPECT_THROW(reg.move(x, Residency::offloading), LogicError);  // not evictable
  EXPECT_THROW(reg.move(p, Residency::discarded), LogicError);   // no recipe
  reg.pin(a);
  EXPECT_THROW(reg.move(a, Residency::discarded), LogicError);  // in use
  reg.unpin(a);

  // The offload round trip, and a plain tensor can go to host and back.
  reg.move(p, Residency::offloading);
  reg.move(p, Residency::on_host);
  EXPECT_THROW(reg.move(p, Residency::discarded), LogicError);  // host copy is its only copy
  reg.move(p, Residency::prefetching);
  reg.move(p, Residency::resident);
  // The recompute round trip.
  reg.move(a, Residency::discarded);
  EXPECT_THROW(reg.move(a, Residency::resident), LogicError);  // must be recomputed first
  reg.move(a, Residency::recomputing);
  reg.move(a, Residency::resident);
  // Used while its offload copy is in flight: the offload is cancelled.
  reg.move(a, Residency::offloading);
  reg.move(a, Residency::resident);
  EXPECT_EQ(reg.at(a).state, Residency::resident);
}

TEST(TensorRegistry, ErasingRespectsPinsAndRecipes) {
  TensorRegistry reg;
  TensorId x = reg.add(constant(64), nullptr);
  TensorId a = reg.add(activation(64, {x}), nullptr);
  EXPECT_THROW(reg.erase(x), LogicError);  // a's recipe needs x
  reg.pin(a);
  EXPECT_THROW(reg.erase(a), LogicError);
  reg.unpin(a);
  reg.erase(a);
  reg.erase(x);  // no recipe names it any more
  EXPECT_EQ(reg.size(), 0u);
}

}  // namespace
}  // namespace memento
