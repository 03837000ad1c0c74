// A block freed on a copy stream must not be handed to another stream before the copy
// that used it has completed: the offload path depends on it.
#include <gtest/gtest.h>

#include <cstring>
#include <numeric>
#include <vector>

#include "memento/backends.hpp"
#include "memento/caching_allocator.hpp"

namespace memento {
namespace {

constexpr std::size_t MiB = std::size_t{1} << 20;

TEST(AllocatorStreamOrder, BlockFreedAfterSlowCopyIsNotReusedElsewhereEarly) {
  // 4 MiB over a 40 MB/s link: the device-to-host copy takes about 100 ms.
  auto backend = make_host_backend({.capacity = 64 * MiB, .link_bandwidth = 40e6});
  CachingAllocator alloc(*backend, {.budget = 32 * MiB});
  Stream compute = Backend::default_stream();
  Stream copy = backend->create_stream();
  std::vector<unsigned char> host(4 * MiB);

  auto* block = static_cast<unsigned char*>(alloc.allocate(4 * MiB, copy));
  std::iota(block, block + 4 * MiB, 0);  // the activation
  Event copied = backend->create_event();
  backend->copy_async(host.data(), block, 4 * MiB, CopyKind::device_to_host, copy);
  backend->record(copied, copy);
  alloc.deallocate(block);  // stream-ordered: the copy still reads it

  auto* other = static_cast<unsigned char*>(alloc.allocate(4 * MiB, compute));
  bool copy_done = backend->query(copied);
  if (!copy_done) {
    EXPECT_NE(other, block) << "block handed to the compute stream while its copy was running";
  }
  std::memset(other, 0xff, 4 * MiB);  // would corrupt the copy if it were the same block
  backend->synchronize(copied);
  for (std::size_t i = 0; i < host.size(); ++i)
    ASSERT_EQ(host[i], static_cast<unsigned char>(i)) << "copy corrupted at byte " << i;
  alloc.deallocate(other);
  backend->destroy_event(copied);
}

TEST(AllocatorStreamOrder, UnderBudgetPressureTheStreamWaitsForTheCopyOnTheDevice) {
  auto backend = make_host_backend({.capacity = 64 * MiB, .link_bandwidth = 40e6});
  // Room for one 4 MiB block only: the block the copy still reads is handed to the compute
  // stream with a device-side wait, not a host synchronisation; work the compute stream
  // runs on it starts after the copy.
  CachingAllocator alloc(*backend, {.budget = 4 * MiB});
  Stream compute = Backend::default_stream();
  Stream copy = backend->create_stream();
  std::vector<unsigned char> host(4 * MiB);
  auto* block = static_cast<unsigned char*>(alloc.allocate(4 * MiB, copy));
  std::iota(block, block + 4 * MiB, 0);
  Event copied = backend->create_event();
  backend->copy_async(host.data(), block, 4 * MiB, CopyKind::device_to_host, copy);
  backend->record(copied, copy);
  alloc.deallocate(block);

  auto* reused = static_cast<unsigned char*>(alloc.allocate(4 * MiB, compute));
  EXPECT_EQ(reused, block) << "the only memory is the block";
  EXPECT_EQ(alloc.stats().stream_syncs, 0u) << "the host waited for the copy";
  EXPECT_EQ(alloc.stats().stream_waits, 1u);
  backend->launch(compute, Kernel{.name = "overwrite",
                                  .cost = {},
                                  .host = [reused] { std::memset(reused, 0xff, 4 * MiB); },
                                  .cuda = {}});
  backend->synchronize(compute);
  EXPECT_TRUE(backend->query(copied));
  for (std::size_t i = 0; i < host.size(); ++i)
    ASSERT_EQ(host[i], static_cast<unsigned char>(i)) << "copy corrupted at byte " << i;
  EXPECT_EQ(reused[0], 0xff);
  alloc.deallocate(reused);
  backend->destroy_event(copied);
}

TEST(AllocatorStreamOrder, RecordStreamBlockIsHandedOverWithADeviceSideWait) {
  // The offload path: a block allocated on the compute stream, read by a slow copy on
  // another stream (record_stream), freed, and needed again by the compute stream.
  auto backend = make_host_backend({.capacity = 64 * MiB, .link_bandwidth = 40e6});
  CachingAllocator alloc(*backend, {.budget = 4 * MiB});
  Stream compute = Backend::default_stream();
  Stream copy = backend->create_stream();
  std::vector<unsigned char> host(4 * MiB);
  auto* block = static_cast<unsigned char*>(alloc.allocate(4 * MiB, compute));
  std::iota(block, block + 4 * MiB, 0);
  backend->copy_async(host.data(), block, 4 * MiB, CopyKind::device_to_host, copy);
  alloc.record_stream(block, copy);
  alloc.deallocate(block);

  auto* reused = static_cast<unsigned char*>(alloc.allocate(4 * MiB, compute));
  EXPECT_EQ(reused, block);
  EXPECT_EQ(alloc.stats().stream_syncs, 0u);
  EXPECT_EQ(alloc.stats().stream_waits, 1u);
  backend->launch(compute, Kernel{.name = "overwrite",
                                  .cost = {},
                                  .host = [reused] { std::memset(reused, 0xff, 4 * MiB); },
                                  .cuda = {}});
  backend->synchronize_all();
  for (std::size_t i = 0; i < host.size(); ++i)
    ASSERT_EQ(host[i], static_cast<unsigned char>(i)) << "copy corrupted at byte " << i;
  alloc.deallocate(reused);
}

}  // namespace
}  // namespace memento
