// DeviceInfo's capabilities over every backend: each reports what it should, and does what
// it reports (code above the backends branches on these, never on the kind).
#include <thread>

#include "backends/backend_conformance.hpp"
#include "backends/numa.hpp"
#include "memento/pinned_host_pool.hpp"

namespace memento {
namespace {

using conformance::kMiB;
using conformance::Pinned;
using conformance::Segment;

struct Capabilities {
  bool executes_kernels;
  bool holds_data;
  bool host_addressable_memory;
  bool virtual_clock;
  bool supports_bf16;
  bool numa_node_nearest_device;
};

Capabilities capabilities_of(const DeviceInfo& i) {
  return {i.executes_kernels, i.holds_data,    i.host_addressable_memory,
          i.virtual_clock,    i.supports_bf16, i.numa_node_nearest_device};
}

template <typename T>
struct Expected;
template <>
struct Expected<testing::HostBackendType> {
  static constexpr Capabilities value{true, true, true, false, false, false};
};
template <>
struct Expected<testing::SimBackendType> {
  static constexpr Capabilities value{false, false, false, true, true, false};
};
template <>
struct Expected<testing::CudaBackendType> {
  static constexpr Capabilities value{true, true, false, false, true, true};
};

template <typename T>
class BackendCapabilities : public conformance::BackendConformance<T> {
 protected:
  [[nodiscard]] const DeviceInfo& info() const { return this->backend_->info(); }
};
TYPED_TEST_SUITE(BackendCapabilities, testing::AllBackendTypes, testing::BackendTypeNames);

TYPED_TEST(BackendCapabilities, ReportsItsCapabilities) {
  const Capabilities got = capabilities_of(this->info());
  const Capabilities want = Expected<TypeParam>::value;
  EXPECT_EQ(got.executes_kernels, want.executes_kernels);
  EXPECT_EQ(got.holds_data, want.holds_data);
  EXPECT_EQ(got.host_addressable_memory, want.host_addressable_memory);
  EXPECT_EQ(got.virtual_clock, want.virtual_clock);
  EXPECT_EQ(got.supports_bf16, want.supports_bf16);
  EXPECT_EQ(got.numa_node_nearest_device, want.numa_node_nearest_device);
}

TYPED_TEST(BackendCapabilities, CapabilitiesAreConsistent) {
  const DeviceInfo& i = this->info();
  // Memory the host dereferences holds bytes; kernels that run produce bytes somewhere.
  EXPECT_TRUE(!i.host_addressable_memory || i.holds_data);
  EXPECT_TRUE(!i.executes_kernels || i.holds_data);
  // A modelled clock goes with modelled work: a backend that runs kernels keeps real time.
  EXPECT_TRUE(!i.executes_kernels || !i.virtual_clock);
}

TYPED_TEST(BackendCapabilities, KernelsRunExactlyWhereItSaysSo) {
  Backend& b = *this->backend_;
  std::atomic<int> ran{0};
  Kernel k{"probe", KernelCost{1e6, 1e3, false}, [&ran] { ++ran; }, [&ran](void*) { ++ran; }};
  Stream s = b.create_stream();
  b.launch(s, k);
  b.launch(Backend::default_stream(), std::move(k));
  b.synchronize_all();
  EXPECT_EQ(ran.load(), this->info().executes_kernels ? 2 : 0);
}

TYPED_TEST(BackendCapabilities, MemoryHoldsDataExactlyWhereItSaysSo) {
  Backend& b = *this->backend_;
  Segment dev(b, kMiB);
  Pinned in(b, kMiB);
  Pinned out(b, kMiB);
  ASSERT_NE(dev.ptr, nullptr);
  ASSERT_NE(in.ptr, nullptr);
  ASSERT_NE(out.ptr, nullptr);
  if (!this->info().holds_data) {
    // Address space only: every address lies beyond any user-space pointer, so using one by
    // mistake faults instead of touching real memory.
    constexpr std::uintptr_t kUserSpaceEnd = std::uintptr_t{1} << 56;
    for (const void* p : {dev.ptr, in.ptr, out.ptr})
      EXPECT_GE(reinterpret_cast<std::uintptr_t>(p), kUserSpaceEnd) << p;
    return;
  }
  std::memset(in.ptr, 0x5a, kMiB);
  std::memset(out.ptr, 0, kMiB);
  Stream s = b.create_stream();
  b.copy_async(dev.ptr, in.ptr, kMiB, CopyKind::host_to_device, s);
  b.copy_async(out.ptr, dev.ptr, kMiB, CopyKind::device_to_host, s);
  b.synchronize(s);
  EXPECT_EQ(std::memcmp(in.ptr, out.ptr, kMiB), 0) << "the bytes did not round-trip";
}

TYPED_TEST(BackendCapabilities, HostAddressableMemoryIsWrittenInPlace) {
  Backend& b = *this->backend_;
  if (!this->info().host_addressable_memory)
    GTEST_SKIP() << b.info().name << ": device memory is not host-addressable";
  Segment dev(b, kMiB);
  Pinned out(b, kMiB);
  ASSERT_NE(dev.ptr, nullptr);
  ASSERT_NE(out.ptr, nullptr);
  std::memset(dev.ptr, 0x3c, kMiB);  // the host writes device memory directly
  Stream s = b.create_stream();
  b.copy_async(out.ptr, dev.ptr, kMiB, CopyKind::device_to_host, s);
  b.synchronize(s);
  EXPECT_EQ(static_cast<unsigned char*>(out.ptr)[kMiB - 1], 0x3c);
}

TYPED_TEST(BackendCapabilities, TheClockIsVirtualExactlyWhereItSaysSo) {
  Backend& b = *this->backend_;
  const auto wall = std::chrono::steady_clock::now();
  const double t0 = b.now();
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  b.host_work(100.0);  // a virtual clock moves by it; a real one has spent it already
  const double t1 = b.now();
  const double slept =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - wall).count();
  if (this->info().virtual_clock) {
    EXPECT_GE(t1 - t0, 100.0);
  } else {
    EXPECT_GE(t1 - t0, 0.019);  // the sleep shows
    EXPECT_LE(t1 - t0, slept + 1e-3);
  }
}

TYPED_TEST(BackendCapabilities, PinnedPoolPlacesBuffersByIt) {
  // The pool's choice of node follows numa_node_nearest_device.
  const DeviceInfo& i = this->info();
  PinnedHostPool pool(*this->backend_, 4 * kMiB);
  if (i.numa_node_nearest_device) {
    EXPECT_EQ(pool.numa_node(), i.numa_node);
  } else {
    EXPECT_EQ(pool.numa_node(), numa::node_of_calling_thread());
  }
}

}  // namespace
}  // namespace memento
