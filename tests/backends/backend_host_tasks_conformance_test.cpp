// Backend::launch_host over every backend: host code in stream order, ordered against copies
// and other streams by events; on sim, modelled time on a CPU engine of its own.
#include <limits>
#include <stdexcept>

#include "backends/backend_conformance.hpp"

namespace memento {
namespace {

using conformance::kMiB;
using conformance::Pinned;
using conformance::Segment;

template <typename T>
class BackendHostTasks : public conformance::BackendConformance<T> {};
TYPED_TEST_SUITE(BackendHostTasks, testing::AllBackendTypes, testing::BackendTypeNames);

HostTask task(std::function<void()> fn, double seconds = 1e-3) {
  return HostTask{"task", std::move(fn), seconds};
}

TYPED_TEST(BackendHostTasks, RunInSubmissionOrderOnAnotherThread) {
  Backend& b = *this->backend_;
  Stream s = b.create_stream();
  std::vector<int> order;  // written by the task thread only, read after synchronize
  std::thread::id ran_on;
  for (int i = 0; i < 32; ++i)
    b.launch_host(s, task([&order, &ran_on, i] {
                    order.push_back(i);
                    ran_on = std::this_thread::get_id();
                  }));
  b.synchronize(s);
  if (!this->real_memory()) {
    EXPECT_TRUE(order.empty()) << "sim models host tasks, never runs them";
    return;
  }
  ASSERT_EQ(order.size(), 32u);
  for (int i = 0; i < 32; ++i) EXPECT_EQ(order[static_cast<std::size_t>(i)], i);
  EXPECT_NE(ran_on, std::this_thread::get_id());
}

TYPED_TEST(BackendHostTasks, OrderedBetweenCopiesOnTheirStream) {
  Backend& b = *this->backend_;
  if (!this->real_memory()) GTEST_SKIP() << "sim holds no bytes";
  Stream s = b.create_stream();
  Segment dev(b, 1 * kMiB);
  Pinned in(b, 4096), out(b, 4096);
  ASSERT_NE(dev.ptr, nullptr);
  std::memset(in.ptr, 1, 4096);
  std::memset(out.ptr, 0, 4096);
  b.copy_async(dev.ptr, in.ptr, 4096, CopyKind::host_to_device, s);
  b.copy_async(out.ptr, dev.ptr, 4096, CopyKind::device_to_host, s);
  // Reads what the copy before it brought back, writes what the copy after it sends.
  b.launch_host(s, task([p = static_cast<unsigned char*>(out.ptr)] {
                  for (int i = 0; i < 4096; ++i) p[i] = static_cast<unsigned char>(p[i] + 1);
                }));
  b.copy_async(dev.ptr, out.ptr, 4096, CopyKind::host_to_device, s);
  b.copy_async(in.ptr, dev.ptr, 4096, CopyKind::device_to_host, s);
  b.synchronize(s);
  const auto* r = static_cast<const unsigned char*>(in.ptr);
  EXPECT_EQ(r[0], 2);
  EXPECT_EQ(r[4095], 2);
}

TYPED_TEST(BackendHostTasks, AnEventOrdersAnotherStreamAfterATask) {
  Backend& b = *this->backend_;
  Stream s1 = b.create_stream();
  Stream s2 = b.create_stream();
  std::atomic<int> step{0};
  int seen = -1;
  b.launch_host(s1, task(
                        [&step] {
                          std::this_thread::sleep_for(std::chrono::milliseconds(20));
                          step.store(1);
                        },
                        5e-3));
  Event e = b.create_event();
  b.record(e, s1);
  b.wait(s2, e);
  b.launch_host(s2, task([&] { seen = step.load(); }));
  b.synchronize(s2);
  if (this->real_memory()) {
    EXPECT_EQ(seen, 1);
  }
  EXPECT_TRUE(b.query(e));
  b.destroy_event(e);
}

TYPED_TEST(BackendHostTasks, RejectsBadSecondsAndReportsAFailedTask) {
  Backend& b = *this->backend_;
  Stream s = b.create_stream();
  EXPECT_THROW(b.launch_host(s, task([] {}, -1.0)), LogicError);
  EXPECT_THROW(b.launch_host(s, task([] {}, std::numeric_limits<double>::infinity())), LogicError);
  if (!this->real_memory()) return;
  // A backend of its own: the host backend's stream stays failed, which teardown would see.
  std::unique_ptr<Backend> own = TypeParam::make();
  Stream t = own->create_stream();
  own->launch_host(t, task([] { throw std::runtime_error("task failed"); }));
  EXPECT_THROW(own->synchronize(t), BackendError);
}

}  // namespace
}  // namespace memento
