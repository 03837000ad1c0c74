// The Backend contract over every backend: streams, events, kernels, the clock, threads.
#include "backends/backend_conformance.hpp"

namespace memento {
namespace {

using conformance::kernel;
using conformance::kMiB;
using conformance::Pinned;
using conformance::Segment;
using testing::test_seed;

template <typename T>
class BackendStreams : public conformance::BackendConformance<T> {};
TYPED_TEST_SUITE(BackendStreams, testing::AllBackendTypes, testing::BackendTypeNames);

// ---- streams ---------------------------------------------------------------------------

TYPED_TEST(BackendStreams, CreatedStreamsAreDistinctAndNotTheDefault) {
  Backend& b = *this->backend_;
  std::set<std::uint32_t> ids{Backend::default_stream().id};
  for (int i = 0; i < 8; ++i) {
    Stream s = b.create_stream();
    EXPECT_TRUE(ids.insert(s.id).second) << "stream id " << s.id << " handed out twice";
    EXPECT_NE(s, Backend::default_stream());
  }
}

TYPED_TEST(BackendStreams, NativeHandlesRoundTrip) {
  Backend& b = *this->backend_;
  EXPECT_EQ(b.native_handle(Backend::default_stream()), nullptr);
  EXPECT_EQ(b.stream_from_native(nullptr), Backend::default_stream());
  std::set<void*> handles;
  for (int i = 0; i < 4; ++i) {
    Stream s = b.create_stream();
    void* h = b.native_handle(s);
    EXPECT_NE(h, nullptr);
    EXPECT_TRUE(handles.insert(h).second) << "two streams share native handle " << h;
    EXPECT_EQ(b.stream_from_native(h), s);
    EXPECT_EQ(b.native_handle(s), h) << "the handle is stable";
  }
}

TYPED_TEST(BackendStreams, SynchronizeOnAnIdleStreamReturns) {
  Backend& b = *this->backend_;
  Stream s = b.create_stream();
  b.synchronize(s);
  b.synchronize(Backend::default_stream());
  b.synchronize_all();
}

TYPED_TEST(BackendStreams, StreamRunsItsWorkInSubmissionOrder) {
  Backend& b = *this->backend_;
  Stream s = b.create_stream();
  std::vector<int> order;  // written by the stream's worker only, read after synchronize
  for (int i = 0; i < 64; ++i)
    b.launch(s, kernel("seq", KernelCost{1e6, 1e3, false}, [&order, i] { order.push_back(i); }));
  b.synchronize(s);
  if (this->kind() == BackendKind::host) {
    ASSERT_EQ(order.size(), 64u);
    for (int i = 0; i < 64; ++i) EXPECT_EQ(order[static_cast<std::size_t>(i)], i);
  } else {
    EXPECT_TRUE(order.empty()) << "only the host backend runs kernel.host";
  }
}

// ---- events ----------------------------------------------------------------------------

TYPED_TEST(BackendStreams, AnEventNeverRecordedIsComplete) {
  Backend& b = *this->backend_;
  Event e = b.create_event();
  EXPECT_TRUE(b.query(e));
  b.synchronize(e);  // returns at once
  EXPECT_TRUE(b.query(e));
  // Waiting on it orders nothing and does not block the stream.
  Stream s = b.create_stream();
  b.wait(s, e);
  b.synchronize(s);
  b.destroy_event(e);
}

TYPED_TEST(BackendStreams, EventsAreDistinct) {
  Backend& b = *this->backend_;
  std::vector<Event> events;
  std::set<std::uint32_t> ids;
  for (int i = 0; i < 16; ++i) {
    events.push_back(b.create_event());
    EXPECT_TRUE(ids.insert(events.back().id).second) << "event id handed out twice";
  }
  for (Event e : events) b.destroy_event(e);
}

TYPED_TEST(BackendStreams, RecordedEventCompletesAfterSynchronize) {
  Backend& b = *this->backend_;
  Stream s = b.create_stream();
  std::atomic<bool> ran{false};
  b.launch(s, kernel("slow", KernelCost{1e10, 1e8, false}, [&] {
             std::this_thread::sleep_for(std::chrono::milliseconds(20));
             ran.store(true);
           }));
  Event e = b.create_event();
  b.record(e, s);
  b.synchronize(e);
  EXPECT_TRUE(b.query(e));
  if (this->kind() == BackendKind::host) {
    EXPECT_TRUE(ran.load());
  }
  // Re-recording on an idle stream captures nothing new: still complete after synchronize.
  b.record(e, s);
  b.synchronize(e);
  EXPECT_TRUE(b.query(e));
  // Synchronizing the stream completes every event recorded on it.
  b.launch(s, kernel("again", KernelCost{1e9, 1e6, false}));
  b.record(e, s);
  b.synchronize(s);
  EXPECT_TRUE(b.query(e));
  b.destroy_event(e);
}

TYPED_TEST(BackendStreams, RecordOnTheDefaultStreamWorks) {
  Backend& b = *this->backend_;
  std::atomic<int> ran{0};
  b.launch(Backend::default_stream(),
           kernel("default", KernelCost{1e9, 1e6, false}, [&] { ran.fetch_add(1); }));
  Event e = b.create_event();
  b.record(e, Backend::default_stream());
  b.synchronize(e);
  EXPECT_TRUE(b.query(e));
  if (this->kind() == BackendKind::host) {
    EXPECT_EQ(ran.load(), 1);
  }
  b.destroy_event(e);
}

TYPED_TEST(BackendStreams, WaitOrdersASecondStreamAfterTheFirst) {
  Backend& b = *this->backend_;
  Stream a = b.create_stream();
  Stream s2 = b.create_stream();
  const std::size_t n = kMiB;
  Segment dev(b, n);
  Pinned host(b, n);
  ASSERT_NE(dev.ptr, nullptr);
  ASSERT_NE(host.ptr, nullptr);
  if (this->real_memory()) std::memset(host.ptr, 7, n);

  // The sequence the host backend's kernels append to; order is checked on host only.
  std::mutex mutex;
  std::vector<int> sequence;
  const auto append = [&](int v) {
    std::lock_guard lock(mutex);
    sequence.push_back(v);
  };

  const KernelCost long_cost{1e12, 1e9, false};  // ~50 ms on the sim's A100 vector rate
  const double t0 = b.now();
  b.launch(a, kernel("first", long_cost, [&] {
             std::this_thread::sleep_for(std::chrono::milliseconds(60));
             append(1);
           }));
  Event ea = b.create_event();
  b.record(ea, a);
  b.wait(s2, ea);
  // An h2d copy runs on a different engine than kernels on sim and cuda, so only the wait
  // can order it after the first stream's kernel.
  b.copy_async(dev.ptr, host.ptr, n, CopyKind::host_to_device, s2);
  b.launch(s2, kernel("second", KernelCost{1e6, 1e3, false}, [&] { append(2); }));
  Event eb = b.create_event();
  b.record(eb, s2);

  b.synchronize(eb);
  EXPECT_TRUE(b.query(eb));
  EXPECT_TRUE(b.query(ea)) << "the second stream's event completed before the first's";

  if (this->kind() == BackendKind::host) {
    std::lock_guard lock(mutex);
    EXPECT_EQ(sequence, (std::vector<int>{1, 2}));
  }
  if (this->kind() == BackendKind::sim) {
    // Virtual time: the second stream's work ended after the first kernel's roofline time.
    const std::string name = b.info().name.substr(std::string("sim:").size());
    const DeviceProfile& p = find_device_profile(name);
    const double kernel_time =
        std::max(long_cost.flops / p.vector_flops, long_cost.bytes / p.hbm_bandwidth);
    const double copy_time = static_cast<double>(n) / p.h2d_bandwidth;
    EXPECT_GE(b.now() - t0, kernel_time + copy_time - 1e-12);
  }
  b.destroy_event(ea);
  b.destroy_event(eb);
}

TYPED_TEST(BackendStreams, SynchronizeAllCompletesEveryEvent) {
  Backend& b = *this->backend_;
  std::vector<Stream> streams{Backend::default_stream()};
  for (int i = 0; i < 4; ++i) streams.push_back(b.create_stream());
  std::atomic<int> ran{0};
  std::vector<Event> events;
  for (std::size_t i = 0; i < streams.size(); ++i) {
    b.launch(streams[i],
             kernel("work", KernelCost{1e9 * static_cast<double>(i + 1), 1e6, false}, [&ran, i] {
               std::this_thread::sleep_for(std::chrono::milliseconds(5 * i));
               ran.fetch_add(1);
             }));
    events.push_back(b.create_event());
    b.record(events.back(), streams[i]);
  }
  b.synchronize_all();
  for (Event e : events) EXPECT_TRUE(b.query(e)) << "event " << e.id;
  if (this->kind() == BackendKind::host) {
    EXPECT_EQ(ran.load(), static_cast<int>(streams.size()));
  }
  for (Event e : events) b.destroy_event(e);
}

TYPED_TEST(BackendStreams, DestroyedEventsAreRejected) {
  Backend& b = *this->backend_;
  Stream s = b.create_stream();
  Event e = b.create_event();
  b.record(e, s);
  b.synchronize(e);
  b.destroy_event(e);
  EXPECT_THROW((void)b.query(e), LogicError);
  EXPECT_THROW(b.record(e, s), LogicError);
  EXPECT_THROW(b.wait(s, e), LogicError);
  EXPECT_THROW(b.synchronize(e), LogicError);
  // A second destroy is reported, not thrown (destroy_event is noexcept).
  b.destroy_event(e);
  // An event this backend never handed out is rejected too.
  const Event bogus{0xFFFFFFF0u};
  EXPECT_THROW((void)b.query(bogus), LogicError);
  EXPECT_THROW(b.record(bogus, s), LogicError);
}

// Regression: event ids must never be reused, or a stale handle names a newer event.
TYPED_TEST(BackendStreams, DestroyedEventStaysRejectedAfterNewEventsAreCreated) {
  Backend& b = *this->backend_;
  Stream s = b.create_stream();
  Event stale = b.create_event();
  b.destroy_event(stale);
  Event fresh = b.create_event();
  EXPECT_NE(stale, fresh) << "a destroyed event's id was handed out again";
  EXPECT_THROW((void)b.query(stale), LogicError);
  EXPECT_THROW(b.record(stale, s), LogicError);
  // A double destroy of the stale handle must not destroy the live event.
  b.destroy_event(stale);
  EXPECT_NO_THROW(b.record(fresh, s));
  EXPECT_NO_THROW(b.synchronize(fresh));
  EXPECT_NO_THROW((void)b.query(fresh));
  b.destroy_event(fresh);
}

// ---- kernels ---------------------------------------------------------------------------

TYPED_TEST(BackendStreams, LaunchedKernelsComplete) {
  Backend& b = *this->backend_;
  Stream s = b.create_stream();
  std::atomic<int> ran{0};
  const std::vector<KernelCost> costs = {
      {0, 0, false}, {1e9, 0, false}, {0, 1e9, false}, {1e12, 1e6, true}, {5e10, 5e8, false}};
  for (const KernelCost& c : costs) b.launch(s, kernel("k", c, [&] { ran.fetch_add(1); }));
  Event e = b.create_event();
  b.record(e, s);
  b.synchronize(e);
  EXPECT_TRUE(b.query(e));
  if (this->kind() == BackendKind::host) {
    EXPECT_EQ(ran.load(), static_cast<int>(costs.size()));
  }
  b.destroy_event(e);
}

// ---- clock -----------------------------------------------------------------------------

TYPED_TEST(BackendStreams, NowIsNonDecreasing) {
  Backend& b = *this->backend_;
  Stream s = b.create_stream();
  Segment d(b, kMiB);
  Pinned h(b, kMiB);
  ASSERT_TRUE(d.ptr && h.ptr);
  double last = b.now();
  EXPECT_GE(last, 0.0);
  for (int i = 0; i < 50; ++i) {
    if (i % 3 == 0) b.launch(s, kernel("tick", KernelCost{1e8, 1e6, false}));
    if (i % 5 == 0) b.copy_async(d.ptr, h.ptr, kMiB, CopyKind::host_to_device, s);
    if (i % 7 == 0) b.synchronize(s);
    const double t = b.now();
    EXPECT_GE(t, last) << "step " << i;
    last = t;
  }
  b.synchronize_all();
  EXPECT_GE(b.now(), last);
}

// ---- threads ---------------------------------------------------------------------------

TYPED_TEST(BackendStreams, ConcurrentCallersFromManyThreads) {
  Backend& b = *this->backend_;
  constexpr int kThreads = 4;
  constexpr int kRounds = 40;
  std::atomic<int> ran{0};
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      try {
        Stream s = b.create_stream();
        Event e = b.create_event();
        for (int r = 0; r < kRounds; ++r) {
          void* seg = b.allocate_segment(64 * 1024);
          if (seg == nullptr) {
            failures.fetch_add(1);
            continue;
          }
          b.launch(s, kernel("mt", KernelCost{1e6, 1e4, false}, [&] { ran.fetch_add(1); }));
          b.record(e, s);
          if (r % 4 == 0) b.synchronize(e);
          (void)b.query(e);
          b.synchronize(s);  // the kernel is done before its segment goes back
          b.free_segment(seg, 64 * 1024);
        }
        b.destroy_event(e);
      } catch (const std::exception&) {
        failures.fetch_add(1);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
  b.synchronize_all();
  EXPECT_EQ(b.segment_bytes(), 0u);
  if (this->kind() == BackendKind::host) {
    EXPECT_EQ(ran.load(), kThreads * kRounds);
  }
}

TYPED_TEST(BackendStreams, StalledSecondsCountDeviceSideWaits) {
  Backend& b = *this->backend_;
  Stream busy = b.create_stream();
  Stream waiter = b.create_stream();
  if (!b.stalled_seconds(waiter)) GTEST_SKIP() << b.info().name << " does not measure stalls";
  EXPECT_EQ(*b.stalled_seconds(waiter), 0.0);
  // ~50 ms on the busy stream (slept on host, modelled from the FLOPs on sim).
  const double flops = 0.05 * std::max(b.info().vector_flops, 1.0);
  b.launch(busy, kernel("busy", {flops, 0, false},
                        [] { std::this_thread::sleep_for(std::chrono::milliseconds(50)); }));
  Event done = b.create_event();
  b.record(done, busy);
  b.wait(waiter, done);
  b.launch(waiter, kernel("after", {}));
  b.synchronize_all();
  EXPECT_GE(*b.stalled_seconds(waiter), 0.02) << "the waiter sat behind the busy stream";
  EXPECT_EQ(*b.stalled_seconds(busy), 0.0) << "the busy stream never waited";
  b.destroy_event(done);
}

}  // namespace
}  // namespace memento
