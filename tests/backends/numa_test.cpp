// NUMA placement of host memory. Runs on any machine: a single-node machine is node 0.
#include "backends/numa.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <thread>
#include <vector>

namespace memento {
namespace {

constexpr std::size_t kMiB = std::size_t{1} << 20;

// Writes a position-dependent pattern over the whole buffer and reads it back, so that every
// page is really there and none aliases another.
void expect_writable(void* ptr, std::size_t bytes) {
  auto* p = static_cast<std::uint8_t*>(ptr);
  for (std::size_t i = 0; i < bytes; ++i) p[i] = static_cast<std::uint8_t>(i * 31 + (i >> 12));
  std::size_t mismatches = 0;
  for (std::size_t i = 0; i < bytes; ++i)
    mismatches += p[i] != static_cast<std::uint8_t>(i * 31 + (i >> 12));
  EXPECT_EQ(mismatches, 0u);
}

TEST(Numa, CallingThreadHasANode) { EXPECT_GE(numa::node_of_calling_thread(), 0); }

TEST(Numa, AllocatesWritablePageAlignedMemoryOnTheThreadsNode) {
  int node = numa::node_of_calling_thread();
  void* p = numa::allocate_on_node(kMiB, node);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(p) % static_cast<std::uintptr_t>(getpagesize()), 0u);
  expect_writable(p, kMiB);
  numa::free(p, kMiB);
}

TEST(Numa, NoNodePreferenceWorks) {
  void* p = numa::allocate_on_node(kMiB + 123, -1);
  ASSERT_NE(p, nullptr);
  expect_writable(p, kMiB + 123);
  numa::free(p, kMiB + 123);
}

TEST(Numa, UnknownNodeFallsBackToUnboundMemory) {
  void* p = numa::allocate_on_node(kMiB, 4000);
  ASSERT_NE(p, nullptr);
  expect_writable(p, kMiB);
  numa::free(p, kMiB);
}

TEST(Numa, ZeroBytesAndNullAreHarmless) {
  EXPECT_EQ(numa::allocate_on_node(0, 0), nullptr);
  numa::free(nullptr, kMiB);
}

TEST(Numa, HugeAllocationFailsCleanlyOrSucceeds) {
  // 1 EiB: no machine has it; overcommit may still hand out the address space. Never touched.
  const std::size_t huge = std::size_t{1} << 60;
  for (int node : {-1, numa::node_of_calling_thread()}) {
    void* p = numa::allocate_on_node(huge, node);
    if (p != nullptr) numa::free(p, huge);
  }
}

TEST(Numa, PciLookupOfUnknownDevicesIsNotAnError) {
  EXPECT_EQ(numa::node_of_pci_bus_id(nullptr), -1);
  // No such device; a single-node machine may still answer its only node.
  EXPECT_GE(numa::node_of_pci_bus_id("ffff:ff:1f.7"), -1);
  EXPECT_GE(numa::node_of_pci_bus_id("not a bus id"), -1);
}

TEST(Numa, ConcurrentFirstUseFromManyThreads) {
  // Under ctest each test runs in its own process, so there this is the first use.
  constexpr int kThreads = 8;
  std::vector<int> nodes(kThreads, -2);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&nodes, t] {
      nodes[static_cast<std::size_t>(t)] = numa::node_of_calling_thread();
      void* p = numa::allocate_on_node(64 * 1024, nodes[static_cast<std::size_t>(t)]);
      ASSERT_NE(p, nullptr);
      expect_writable(p, 64 * 1024);
      numa::free(p, 64 * 1024);
    });
  for (auto& th : threads) th.join();
  for (int node : nodes) EXPECT_GE(node, 0);
}

}  // namespace
}  // namespace memento
