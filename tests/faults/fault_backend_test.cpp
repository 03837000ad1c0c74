// The fault-injecting decorator itself: each site and mode does what it says, on host and
// sim, and an asynchronous failure is reported once, by what covers it.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "memento/backends.hpp"
#include "memento/device_profile.hpp"
#include "memento/error.hpp"
#include "memento/fault_injection.hpp"

namespace memento {
namespace {

TEST(FaultBackend, RejectsFaultsASiteCannotTake) {
  auto inner = make_host_backend();
  EXPECT_THROW(FaultInjectingBackend(*inner, {{FaultSite::copy, 1, FaultMode::refuse}}),
               LogicError);
  EXPECT_THROW(
      FaultInjectingBackend(*inner, {{FaultSite::segment_allocation, 1, FaultMode::async}}),
      LogicError);
  EXPECT_THROW(FaultInjectingBackend(*inner, {{FaultSite::copy, 0, FaultMode::throws}}),
               LogicError);
}

TEST(FaultBackend, AllocationsAreRefusedOrThrowOnTheNthCall) {
  auto inner = make_host_backend();
  FaultInjectingBackend fb(*inner, {{FaultSite::segment_allocation, 2, FaultMode::refuse},
                                    {FaultSite::segment_allocation, 3, FaultMode::throws},
                                    {FaultSite::pinned_allocation, 1, FaultMode::throws}});
  void* a = fb.allocate_segment(4096);
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(fb.allocate_segment(4096), nullptr);
  EXPECT_THROW((void)fb.allocate_segment(4096), BackendError);
  void* d = fb.allocate_segment(4096);
  ASSERT_NE(d, nullptr);
  EXPECT_THROW((void)fb.allocate_pinned(4096, -1), BackendError);
  void* p = fb.allocate_pinned(4096, -1);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(fb.injected(), 3u);
  EXPECT_EQ(fb.calls(FaultSite::segment_allocation), 4u);
  fb.free_segment(a, 4096);
  fb.free_segment(d, 4096);
  fb.free_pinned(p, 4096);
  EXPECT_EQ(inner->segment_bytes(), 0u);
}

TEST(FaultBackend, AnAsyncCopyFailureIsReportedOnceByTheSynchronizeThatCoversIt) {
  auto inner = make_host_backend();
  FaultInjectingBackend fb(*inner, {{FaultSite::copy, 1, FaultMode::async}});
  Stream s = fb.create_stream();
  Stream other = fb.create_stream();
  std::vector<char> src(64, 'a');
  std::vector<char> dst(64, 'z');
  Event before = fb.create_event();
  fb.record(before, s);  // before the failure: it does not cover it
  fb.copy_async(dst.data(), src.data(), 64, CopyKind::host_to_host, s);
  Event after = fb.create_event();
  fb.record(after, s);
  EXPECT_NO_THROW(fb.synchronize(before));
  EXPECT_NO_THROW(fb.synchronize(other));
  EXPECT_EQ(fb.unreported(), 1u);
  try {
    fb.synchronize(after);
    FAIL() << "the failed copy was not reported";
  } catch (const AsyncBackendError& e) {
    EXPECT_NE(std::string(e.what()).find("injected asynchronous fault"), std::string::npos);
  }
  EXPECT_EQ(dst[0], 'z');              // the copy did not run
  EXPECT_NO_THROW(fb.synchronize(s));  // reported once
  // The next copy runs.
  fb.copy_async(dst.data(), src.data(), 64, CopyKind::host_to_host, s);
  fb.synchronize(s);
  EXPECT_EQ(dst[0], 'a');
  fb.destroy_event(before);
  fb.destroy_event(after);
}

TEST(FaultBackend, AFailureReachesAStreamThatWaitsOnIt) {
  auto inner = make_host_backend();
  FaultInjectingBackend fb(*inner, {{FaultSite::kernel_launch, 1, FaultMode::async}});
  Stream producer = fb.create_stream();
  Stream consumer = fb.create_stream();
  bool ran = false;
  fb.launch(producer, Kernel{"produce", {}, [&ran] { ran = true; }, {}});
  Event e = fb.create_event();
  fb.record(e, producer);
  fb.wait(consumer, e);
  EXPECT_THROW(fb.synchronize(consumer), AsyncBackendError);
  EXPECT_THROW(fb.synchronize_all(), AsyncBackendError);  // the producer's own report
  EXPECT_NO_THROW(fb.synchronize_all());
  EXPECT_FALSE(ran);
  fb.destroy_event(e);
}

TEST(FaultBackend, HostTasksPassThroughOrFail) {
  auto inner = make_host_backend();
  FaultInjectingBackend fb(*inner, {{FaultSite::host_launch, 2, FaultMode::async},
                                    {FaultSite::host_launch, 3, FaultMode::throws}});
  Stream s = fb.create_stream();
  int ran = 0;  // the stream's thread only, read after synchronize
  fb.launch_host(s, HostTask{"first", [&ran] { ++ran; }, 0});
  fb.launch_host(s, HostTask{"dropped", [&ran] { ran += 10; }, 0});
  EXPECT_THROW(fb.launch_host(s, HostTask{"thrown", [&ran] { ran += 100; }, 0}), BackendError);
  EXPECT_THROW(fb.synchronize(s), AsyncBackendError);
  EXPECT_EQ(ran, 1);
  EXPECT_EQ(fb.calls(FaultSite::host_launch), 3u);
  fb.launch_host(s, HostTask{"after", [&ran] { ++ran; }, 0});
  EXPECT_NO_THROW(fb.synchronize(s));
  EXPECT_EQ(ran, 2);
}

TEST(FaultBackend, ThrownRecordsAndWaitsDoNothing) {
  auto sim = make_sim_backend(find_device_profile("h100-sxm"));
  FaultInjectingBackend fb(*sim, {{FaultSite::event_record, 1, FaultMode::throws},
                                  {FaultSite::event_wait, 1, FaultMode::throws},
                                  {FaultSite::event_record, 2, FaultMode::async}});
  Stream s = fb.create_stream();
  Event e = fb.create_event();
  EXPECT_THROW(fb.record(e, s), BackendError);
  EXPECT_THROW(fb.wait(s, e), BackendError);
  fb.record(e, s);  // takes effect, and fails the stream
  EXPECT_THROW(fb.synchronize(e), AsyncBackendError);
  EXPECT_NO_THROW(fb.synchronize_all());
  EXPECT_EQ(fb.injected(), 3u);
  EXPECT_EQ(fb.injected_log().size(), 3u);
  fb.destroy_event(e);
}

TEST(FaultBackend, RandomFaultsHitOnlySitesThatWereCalled) {
  std::array<std::size_t, kFaultSites> calls{};
  calls[static_cast<std::size_t>(FaultSite::copy)] = 5;
  calls[static_cast<std::size_t>(FaultSite::pinned_allocation)] = 2;
  for (std::uint64_t seed = 0; seed < 50; ++seed) {
    for (const Fault& f : random_faults(seed, 3, calls)) {
      ASSERT_TRUE(f.site == FaultSite::copy || f.site == FaultSite::pinned_allocation);
      EXPECT_GE(f.nth, 1u);
      EXPECT_LE(f.nth, calls[static_cast<std::size_t>(f.site)]);
      EXPECT_NE(f.mode, f.site == FaultSite::copy ? FaultMode::refuse : FaultMode::async);
    }
  }
  EXPECT_EQ(random_faults(1, 3, calls).size(), 3u);
  EXPECT_TRUE(random_faults(1, 3, {}).empty());
}

}  // namespace
}  // namespace memento
