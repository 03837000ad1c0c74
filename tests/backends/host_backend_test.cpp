// Host-backend behaviour beyond the shared contract: worker threads per stream, real
// concurrency between streams, link throttling, task failures, capacity and argument checks.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <memory>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "memento/backends.hpp"
#include "memento/error.hpp"

namespace memento {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr std::size_t kMiB = std::size_t{1} << 20;

Kernel host_kernel(std::function<void()> fn, std::string name = "k") {
  return Kernel{std::move(name), KernelCost{1e6, 1e3, false}, std::move(fn), {}};
}

std::unique_ptr<Backend> host(std::size_t capacity = std::size_t{1} << 30,
                              double link_bandwidth = 0) {
  return make_host_backend({.capacity = capacity, .link_bandwidth = link_bandwidth});
}

/// Polls query(event) until it is true or `timeout` passes; query never rethrows task errors.
bool completes_within(Backend& b, Event e, milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (!b.query(e)) {
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(milliseconds(1));
  }
  return true;
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

TEST(HostBackend, InfoReportsTheConfiguredCapacity) {
  auto b = host(123 * kMiB);
  EXPECT_EQ(b->info().kind, BackendKind::host);
  EXPECT_EQ(b->info().name, "host");
  EXPECT_EQ(b->info().capacity, 123 * kMiB);
}

TEST(HostBackend, OneStreamRunsInOrderOnOneWorkerThread) {
  auto b = host();
  const std::thread::id caller = std::this_thread::get_id();
  for (Stream s : {Backend::default_stream(), b->create_stream()}) {
    std::mutex mutex;
    std::vector<int> order;
    std::set<std::thread::id> threads;
    for (int i = 0; i < 200; ++i) {
      b->launch(s, host_kernel([&, i] {
                  std::lock_guard lock(mutex);
                  order.push_back(i);
                  threads.insert(std::this_thread::get_id());
                }));
    }
    b->synchronize(s);
    std::lock_guard lock(mutex);
    ASSERT_EQ(order.size(), 200u) << "stream " << s.id;
    for (int i = 0; i < 200; ++i) EXPECT_EQ(order[static_cast<std::size_t>(i)], i);
    ASSERT_EQ(threads.size(), 1u) << "stream " << s.id << " ran on several threads";
    EXPECT_NE(*threads.begin(), caller) << "kernels must run on the stream's worker";
  }
}

TEST(HostBackend, CopiesAndKernelsShareTheStreamOrder) {
  auto b = host();
  Stream s = b->create_stream();
  void* dev = b->allocate_segment(4096);
  void* pinned = b->allocate_pinned(4096, -1);
  ASSERT_TRUE(dev && pinned);
  std::memset(pinned, 1, 4096);
  b->copy_async(dev, pinned, 4096, CopyKind::host_to_device, s);
  // The kernel sees the copied bytes, then overwrites them; the copy back sees the kernel's.
  bool saw_copy = false;
  b->launch(s, host_kernel([&] {
              saw_copy = static_cast<unsigned char*>(dev)[4095] == 1;
              std::memset(dev, 2, 4096);
            }));
  b->copy_async(pinned, dev, 4096, CopyKind::device_to_host, s);
  b->synchronize(s);
  EXPECT_TRUE(saw_copy);
  EXPECT_EQ(static_cast<unsigned char*>(pinned)[0], 2);
  b->free_segment(dev, 4096);
  b->free_pinned(pinned, 4096);
}

TEST(HostBackend, DifferentStreamsRunConcurrently) {
  auto b = host();
  Stream s1 = b->create_stream();
  Stream s2 = b->create_stream();
  std::atomic<bool> flag1{false};
  std::atomic<bool> flag2{false};
  std::atomic<bool> ok1{false};
  std::atomic<bool> ok2{false};
  // Each kernel raises its flag and waits for the other's: both finish only if they overlap.
  const auto rendezvous = [](std::atomic<bool>& mine, std::atomic<bool>& other,
                             std::atomic<bool>& ok) {
    mine.store(true);
    const auto deadline = Clock::now() + std::chrono::seconds(10);
    while (!other.load()) {
      if (Clock::now() > deadline) return;
      std::this_thread::sleep_for(milliseconds(1));
    }
    ok.store(true);
  };
  b->launch(s1, host_kernel([&] { rendezvous(flag1, flag2, ok1); }));
  b->launch(s2, host_kernel([&] { rendezvous(flag2, flag1, ok2); }));
  b->synchronize_all();
  EXPECT_TRUE(ok1.load()) << "stream 1 never saw stream 2 run";
  EXPECT_TRUE(ok2.load()) << "stream 2 never saw stream 1 run";
}

TEST(HostBackend, CrossStreamWaitBlocksOnlyTheWaitingStream) {
  auto b = host();
  Stream a = b->create_stream();
  Stream w = b->create_stream();
  Stream free_stream = b->create_stream();
  std::atomic<bool> release{false};
  std::atomic<bool> waiter_ran{false};
  b->launch(a, host_kernel([&] {
              const auto deadline = Clock::now() + std::chrono::seconds(10);
              while (!release.load() && Clock::now() < deadline)
                std::this_thread::sleep_for(milliseconds(1));
            }));
  Event ea = b->create_event();
  b->record(ea, a);
  b->wait(w, ea);
  b->launch(w, host_kernel([&] { waiter_ran.store(true); }));
  Event ew = b->create_event();
  b->record(ew, w);
  // An unrelated stream is not held up by the wait.
  b->launch(free_stream, host_kernel([] {}));
  b->synchronize(free_stream);
  std::this_thread::sleep_for(milliseconds(20));
  EXPECT_FALSE(b->query(ea));
  EXPECT_FALSE(b->query(ew));
  EXPECT_FALSE(waiter_ran.load()) << "the waiting stream ran ahead of the event";
  release.store(true);
  b->synchronize(ew);
  EXPECT_TRUE(waiter_ran.load());
  EXPECT_TRUE(b->query(ea));
  b->destroy_event(ea);
  b->destroy_event(ew);
}

TEST(HostBackend, LinkBandwidthThrottlesHostDeviceCopies) {
  constexpr double kBandwidth = 40e6;  // bytes/s: 4 MiB take ~105 ms
  constexpr std::size_t kBytes = 4 * kMiB;
  auto b = host(std::size_t{1} << 30, kBandwidth);
  void* dev = b->allocate_segment(kBytes);
  void* pinned = b->allocate_pinned(kBytes, -1);
  ASSERT_TRUE(dev && pinned);
  std::memset(pinned, 0x5A, kBytes);
  Stream s = b->create_stream();

  // Generous lower bounds only (90 ms of ~105 ms); timing has no upper bound here.
  auto start = Clock::now();
  b->copy_async(dev, pinned, kBytes, CopyKind::host_to_device, s);
  b->synchronize(s);
  EXPECT_GE(Clock::now() - start, milliseconds(90)) << "host_to_device was not throttled";

  std::memset(pinned, 0, kBytes);
  start = Clock::now();
  b->copy_async(pinned, dev, kBytes, CopyKind::device_to_host, s);
  b->synchronize(s);
  EXPECT_GE(Clock::now() - start, milliseconds(90)) << "device_to_host was not throttled";
  EXPECT_EQ(static_cast<unsigned char*>(pinned)[kBytes - 1], 0x5A);

  b->free_segment(dev, kBytes);
  b->free_pinned(pinned, kBytes);
}

TEST(HostBackend, LinkBandwidthDoesNotThrottleDeviceToDeviceOrHostToHost) {
  // At 100 kB/s a throttled 4 MiB copy would take ~42 s; unthrottled it is a memcpy. The
  // deadline is far from both, so it does not depend on the machine's speed.
  constexpr std::size_t kBytes = 4 * kMiB;
  auto b = host(std::size_t{1} << 30, 1e5);
  void* d1 = b->allocate_segment(kBytes);
  void* d2 = b->allocate_segment(kBytes);
  void* h1 = b->allocate_pinned(kBytes, -1);
  void* h2 = b->allocate_pinned(kBytes, -1);
  ASSERT_TRUE(d1 && d2 && h1 && h2);
  std::memset(d1, 0x11, kBytes);
  std::memset(h1, 0x22, kBytes);
  Stream s = b->create_stream();
  Event e = b->create_event();
  b->copy_async(d2, d1, kBytes, CopyKind::device_to_device, s);
  b->copy_async(h2, h1, kBytes, CopyKind::host_to_host, s);
  b->record(e, s);
  EXPECT_TRUE(completes_within(*b, e, milliseconds(10000)))
      << "device_to_device / host_to_host copies were throttled to the link bandwidth";
  b->synchronize(s);
  EXPECT_EQ(static_cast<unsigned char*>(d2)[kBytes - 1], 0x11);
  EXPECT_EQ(static_cast<unsigned char*>(h2)[kBytes - 1], 0x22);
  b->destroy_event(e);
  b->free_segment(d1, kBytes);
  b->free_segment(d2, kBytes);
  b->free_pinned(h1, kBytes);
  b->free_pinned(h2, kBytes);
}

TEST(HostBackend, AFailingKernelIsReportedAndTheStreamGoesOn) {
  auto b = host();
  Stream s = b->create_stream();
  b->launch(
      s, host_kernel([] { throw std::runtime_error("kernel exploded: code 4711"); }, "exploding"));
  try {
    b->synchronize(s);
    ADD_FAILURE() << "synchronize did not report the failed kernel";
  } catch (const BackendError& e) {
    EXPECT_TRUE(contains(e.what(), "kernel exploded: code 4711")) << e.what();
  }
  // Later work still runs.
  std::atomic<bool> later{false};
  b->launch(s, host_kernel([&] { later.store(true); }));
  Event e = b->create_event();
  b->record(e, s);
  EXPECT_TRUE(completes_within(*b, e, milliseconds(10000)));
  EXPECT_TRUE(later.load()) << "the stream stopped after a failed kernel";
  // Other streams are unaffected.
  Stream other = b->create_stream();
  b->launch(other, host_kernel([] {}));
  EXPECT_NO_THROW(b->synchronize(other));
  b->destroy_event(e);
}

TEST(HostBackend, AFailingKernelIsReportedBySynchronizeOnAnEventAfterIt) {
  auto b = host();
  Stream s = b->create_stream();
  b->launch(s, host_kernel([] { throw std::runtime_error("event-visible failure"); }));
  Event e = b->create_event();
  b->record(e, s);
  try {
    b->synchronize(e);
    ADD_FAILURE() << "synchronize(event) did not report the failed kernel";
  } catch (const BackendError& err) {
    EXPECT_TRUE(contains(err.what(), "event-visible failure")) << err.what();
  }
  EXPECT_TRUE(b->query(e));
  b->destroy_event(e);
}

TEST(HostBackend, ANonStdExceptionIsReportedToo) {
  auto b = host();
  Stream s = b->create_stream();
  b->launch(s, host_kernel([] { throw 42; }));
  EXPECT_THROW(b->synchronize(s), BackendError);
}

TEST(HostBackend, CapacityIsEnforced) {
  auto b = host(kMiB);
  EXPECT_EQ(b->allocate_segment(kMiB + 1), nullptr);
  void* p1 = b->allocate_segment(kMiB / 2);
  void* p2 = b->allocate_segment(kMiB / 2);
  ASSERT_TRUE(p1 && p2);
  EXPECT_EQ(b->segment_bytes(), kMiB);
  EXPECT_EQ(b->allocate_segment(1), nullptr) << "the device is full";
  b->free_segment(p1, kMiB / 2);
  EXPECT_EQ(b->segment_bytes(), kMiB / 2);
  void* p3 = b->allocate_segment(kMiB / 2);
  EXPECT_NE(p3, nullptr) << "freed bytes are available again";
  EXPECT_EQ(b->allocate_segment(1), nullptr);
  b->free_segment(p2, kMiB / 2);
  if (p3 != nullptr) b->free_segment(p3, kMiB / 2);
  EXPECT_EQ(b->segment_bytes(), 0u);
}

TEST(HostBackend, PinnedMemoryTheHostRefusesIsNull) {
  auto b = host();
  // More than a 48-bit address space can map: the host refuses, which is nullptr, not a throw.
  void* p = reinterpret_cast<void*>(1);
  EXPECT_NO_THROW(p = b->allocate_pinned(std::size_t{1} << 52, -1));
  EXPECT_EQ(p, nullptr);
  // Still usable afterwards.
  void* q = b->allocate_pinned(4096, -1);
  ASSERT_NE(q, nullptr);
  b->free_pinned(q, 4096);
}

TEST(HostBackend, MismatchedSegmentFreeIsIgnored) {
  auto b = host(kMiB);
  void* p = b->allocate_segment(4096);
  ASSERT_NE(p, nullptr);
  b->free_segment(p, 1234);  // wrong size: logged, nothing freed
  EXPECT_EQ(b->segment_bytes(), 4096u);
  int local = 0;
  b->free_segment(&local, 4);  // foreign pointer: logged, nothing freed
  EXPECT_EQ(b->segment_bytes(), 4096u);
  b->free_segment(p, 4096);
  EXPECT_EQ(b->segment_bytes(), 0u);
}

TEST(HostBackend, BadStreamIdsAreLogicErrors) {
  auto b = host();
  const Stream bad{42};
  Event e = b->create_event();
  void* dev = b->allocate_segment(4096);
  void* pinned = b->allocate_pinned(4096, -1);
  ASSERT_TRUE(dev && pinned);
  EXPECT_THROW(b->synchronize(bad), LogicError);
  EXPECT_THROW(b->launch(bad, host_kernel([] {})), LogicError);
  EXPECT_THROW(b->record(e, bad), LogicError);
  EXPECT_THROW(b->wait(bad, e), LogicError);
  EXPECT_THROW((void)b->native_handle(bad), LogicError);
  EXPECT_THROW(b->copy_async(dev, pinned, 4096, CopyKind::host_to_device, bad), LogicError);
  // The stream just past the last one is unknown too.
  Stream s = b->create_stream();
  EXPECT_THROW(b->synchronize(Stream{s.id + 1}), LogicError);
  b->destroy_event(e);
  b->free_segment(dev, 4096);
  b->free_pinned(pinned, 4096);
}

TEST(HostBackend, UnknownNativeHandlesAreLogicErrors) {
  auto b = host();
  int not_a_stream = 0;
  EXPECT_THROW((void)b->stream_from_native(&not_a_stream), LogicError);
  // A handle of another backend's stream is foreign here.
  auto other = host();
  void* foreign = other->native_handle(other->create_stream());
  EXPECT_THROW((void)b->stream_from_native(foreign), LogicError);
}

TEST(HostBackend, LaunchWithoutAHostImplementationIsALogicError) {
  auto b = host();
  Kernel k{"cuda-only", KernelCost{1, 1, false}, {}, [](void*) {}};
  EXPECT_THROW(b->launch(Backend::default_stream(), std::move(k)), LogicError);
}

TEST(HostBackend, NullCopyPointersAreLogicErrors) {
  auto b = host();
  void* dev = b->allocate_segment(4096);
  ASSERT_NE(dev, nullptr);
  EXPECT_THROW(b->copy_async(dev, nullptr, 16, CopyKind::host_to_device, Backend::default_stream()),
               LogicError);
  EXPECT_THROW(b->copy_async(nullptr, dev, 16, CopyKind::device_to_host, Backend::default_stream()),
               LogicError);
  b->free_segment(dev, 4096);
}

TEST(HostBackend, BadOptionsAreRejected) {
  // The message names the option and the value, so a misconfiguration is diagnosable.
  try {
    (void)host(kMiB, -1.0);
    ADD_FAILURE() << "a negative link bandwidth was accepted";
  } catch (const Error& e) {
    EXPECT_TRUE(contains(e.what(), "link bandwidth")) << e.what();
    EXPECT_TRUE(contains(e.what(), "-1")) << e.what();
  }
  EXPECT_THROW((void)host(0, 0), Error) << "a zero capacity was accepted";
}

TEST(HostBackend, DestroyingWithQueuedWorkDrainsIt) {
  std::atomic<int> ran{0};
  {
    auto b = host();
    Stream s = b->create_stream();
    for (int i = 0; i < 20; ++i)
      b->launch(s, host_kernel([&] {
                  std::this_thread::sleep_for(milliseconds(1));
                  ran.fetch_add(1);
                }));
  }
  EXPECT_EQ(ran.load(), 20);
}

// Regression: destroying the backend must drain all streams before freeing any, since a
// queued cross-stream wait points at the stream it waits on.
TEST(HostBackend, DestroyingWithAPendingCrossStreamWaitIsSafe) {
  std::atomic<bool> waiter_ran{false};
  {
    auto b = host();
    Stream a = b->create_stream();
    Stream w = b->create_stream();
    // w is busy long enough that the wait task runs after a has been torn down.
    b->launch(w, host_kernel([] { std::this_thread::sleep_for(milliseconds(150)); }));
    b->launch(a, host_kernel([] { std::this_thread::sleep_for(milliseconds(30)); }));
    Event e = b->create_event();
    b->record(e, a);
    b->wait(w, e);  // a is still running: this enqueues a real wait on w
    b->launch(w, host_kernel([&] { waiter_ran.store(true); }));
    b->destroy_event(e);
  }
  EXPECT_TRUE(waiter_ran.load());
}

TEST(HostBackend, StaleEventHandleAfterDestroyIsRejected) {
  auto b = host();
  Event e = b->create_event();
  b->destroy_event(e);
  EXPECT_THROW((void)b->query(e), LogicError);
  EXPECT_THROW(b->synchronize(e), LogicError);
}

}  // namespace
}  // namespace memento
