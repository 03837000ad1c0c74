#include "memento/pinned_host_pool.hpp"

#include <gtest/gtest.h>

#include <cstring>

#include "backend_types.hpp"
#include "backends/numa.hpp"
#include "memento/error.hpp"

namespace memento {
namespace {

constexpr std::size_t MiB = std::size_t{1} << 20;

template <typename T>
class PinnedPool : public testing::BackendTest<T> {};

TYPED_TEST_SUITE(PinnedPool, testing::AllBackendTypes, testing::BackendTypeNames);

TYPED_TEST(PinnedPool, BuffersAreCachedAndReused) {
  PinnedHostPool pool(*this->backend_, 64 * MiB);
  void* a = pool.try_allocate(3 * MiB);
  ASSERT_NE(a, nullptr);
  pool.deallocate(a, Backend::default_stream());
  this->backend_->synchronize_all();
  void* b = pool.try_allocate(3 * MiB + 5);  // same size class
  EXPECT_EQ(b, a);
  PinnedPoolStats s = pool.stats();
  EXPECT_EQ(s.misses, 1u);
  EXPECT_EQ(s.hits, 1u);
  EXPECT_EQ(s.reserved, 4 * MiB);
  EXPECT_EQ(pool.in_use_bytes(), s.in_use);
  EXPECT_EQ(pool.in_use_bytes(), 4 * MiB);
  pool.deallocate(b, Backend::default_stream());
  EXPECT_EQ(pool.in_use_bytes(), 0u);
}

TYPED_TEST(PinnedPool, BudgetExhaustionRefusesInsteadOfThrowing) {
  PinnedHostPool pool(*this->backend_, 8 * MiB);
  void* a = pool.try_allocate(6 * MiB);
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(pool.try_allocate(4 * MiB), nullptr);
  EXPECT_EQ(pool.stats().refusals, 1u);
  pool.deallocate(a, Backend::default_stream());
  // The idle 6 MiB buffer is dropped to make room for a different size.
  void* b = pool.try_allocate(4 * MiB);
  EXPECT_NE(b, nullptr);
  EXPECT_LE(pool.stats().reserved, 8 * MiB);
  pool.deallocate(b, Backend::default_stream());
}

TYPED_TEST(PinnedPool, BadFreesAndSizesAreErrors) {
  PinnedHostPool pool(*this->backend_, 8 * MiB);
  int local = 0;
  EXPECT_THROW(pool.deallocate(&local, Backend::default_stream()), LogicError);
  EXPECT_THROW((void)pool.try_allocate(0), LogicError);
  EXPECT_THROW(PinnedHostPool(*this->backend_, 0), LogicError);
}

TEST(PinnedPoolHost, BufferIsNotReusedBeforeItsCopyCompletes) {
  auto backend = make_host_backend({.capacity = 64 * MiB, .link_bandwidth = 40e6});
  PinnedHostPool pool(*backend, 16 * MiB);
  EXPECT_EQ(pool.numa_node(), numa::node_of_calling_thread());
  Stream copy = backend->create_stream();
  std::vector<unsigned char> device(4 * MiB, 0x5a);
  auto* staging = static_cast<unsigned char*>(pool.try_allocate(4 * MiB));
  backend->copy_async(staging, device.data(), 4 * MiB, CopyKind::device_to_host, copy);
  pool.deallocate(staging, copy);  // the copy still writes it for ~100 ms
  void* again = pool.try_allocate(4 * MiB);
  EXPECT_NE(again, staging);
  backend->synchronize(copy);
  EXPECT_EQ(staging[4 * MiB - 1], 0x5a);
  pool.deallocate(again, copy);
}

}  // namespace
}  // namespace memento
