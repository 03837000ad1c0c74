// The cuda backend on a real GPU. Without one (or in a build without CUDA) every test that
// needs a device skips with the reason; the error path of make_cuda_backend runs everywhere.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "memento/backends.hpp"
#include "memento/config.hpp"
#include "memento/error.hpp"

namespace memento {
namespace {

constexpr std::size_t kMiB = std::size_t{1} << 20;

// Empty when the tests can run; otherwise why they cannot.
std::string why_no_gpu() {
  if (!cuda_backend_compiled()) return "memento was built without the cuda backend";
  if (cuda_device_count() == 0) return "no CUDA device is visible to this process";
  return {};
}

std::string message_of_make_cuda_backend(int device) {
  try {
    (void)make_cuda_backend(device);
  } catch (const BackendError& e) {
    return e.what();
  }
  return "(no BackendError)";
}

TEST(CudaBackendErrors, MakeCudaBackendExplainsWhyItCannot) {
  if (!cuda_backend_compiled()) {
    EXPECT_NE(message_of_make_cuda_backend(0).find("built without the cuda backend"),
              std::string::npos);
  } else if (cuda_device_count() == 0) {
    std::string msg = message_of_make_cuda_backend(0);
    EXPECT_NE(msg.find("no CUDA device"), std::string::npos) << msg;
  } else {
    std::string msg = message_of_make_cuda_backend(cuda_device_count());
    EXPECT_NE(msg.find("invalid CUDA device ordinal"), std::string::npos) << msg;
    msg = message_of_make_cuda_backend(-1);
    EXPECT_NE(msg.find("invalid CUDA device ordinal"), std::string::npos) << msg;
  }
}

TEST(CudaBackendErrors, MakeBackendForwardsTheCudaError) {
  if (why_no_gpu().empty()) GTEST_SKIP() << "a GPU is present; covered by the device tests";
  DeviceSpec spec;
  spec.kind = BackendKind::cuda;
  EXPECT_THROW((void)make_backend(spec), BackendError);
}

class CudaBackendTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::string reason = why_no_gpu(); !reason.empty()) GTEST_SKIP() << reason;
    backend_ = make_cuda_backend(0);
  }

  // `bytes` of pinned memory holding a reproducible pseudo-random pattern.
  void* random_pinned(std::size_t bytes, unsigned seed) {
    void* p = backend_->allocate_pinned(bytes, backend_->info().numa_node);
    EXPECT_NE(p, nullptr);
    if (p == nullptr) return nullptr;
    std::mt19937 gen(seed);
    auto* b = static_cast<std::uint8_t*>(p);
    for (std::size_t i = 0; i < bytes; ++i) b[i] = static_cast<std::uint8_t>(gen());
    return p;
  }

  std::unique_ptr<Backend> backend_;
};

TEST_F(CudaBackendTest, DescribesTheDevice) {
  const DeviceInfo& info = backend_->info();
  EXPECT_EQ(info.kind, BackendKind::cuda);
  EXPECT_EQ(info.name.rfind("cuda:0 (", 0), 0u) << info.name;
  EXPECT_GT(info.capacity, 0u);
  EXPECT_GE(info.numa_node, -1);
  EXPECT_GE(backend_->now(), 0.0);
}

TEST_F(CudaBackendTest, SegmentsAreAlignedAndCounted) {
  void* a = backend_->allocate_segment(64 * kMiB);
  void* b = backend_->allocate_segment(3 * kMiB + 17);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(a) % 512, 0u);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(b) % 512, 0u);
  EXPECT_EQ(backend_->segment_bytes(), 67 * kMiB + 17);
  backend_->free_segment(a, 64 * kMiB);
  EXPECT_EQ(backend_->segment_bytes(), 3 * kMiB + 17);
  backend_->free_segment(b, 3 * kMiB + 17);
  EXPECT_EQ(backend_->segment_bytes(), 0u);
}

TEST_F(CudaBackendTest, OutOfMemoryReturnsNullAndLeavesTheDeviceUsable) {
  EXPECT_EQ(backend_->allocate_segment(backend_->info().capacity * 4), nullptr);
  EXPECT_EQ(backend_->segment_bytes(), 0u);
  void* p = backend_->allocate_segment(kMiB);
  ASSERT_NE(p, nullptr);
  backend_->synchronize_all();  // would report a leftover error
  backend_->free_segment(p, kMiB);
}

TEST_F(CudaBackendTest, PinnedMemoryOnTheDevicesNodeAndWithoutPreference) {
  for (int node : {backend_->info().numa_node, -1}) {
    const std::size_t bytes = 8 * kMiB;
    void* p = backend_->allocate_pinned(bytes, node);
    ASSERT_NE(p, nullptr) << "node " << node;
    std::memset(p, 0x5a, bytes);
    const auto* b = static_cast<const std::uint8_t*>(p);
    std::size_t wrong = 0;
    for (std::size_t i = 0; i < bytes; ++i) wrong += b[i] != 0x5a;
    EXPECT_EQ(wrong, 0u);
    backend_->free_pinned(p, bytes);
  }
}

TEST_F(CudaBackendTest, CopiesRoundTripBitExactAcrossStreamsOrderedByEvents) {
  const std::size_t bytes = 32 * kMiB + 3;
  void* src = random_pinned(bytes, 42);
  void* dst = backend_->allocate_pinned(bytes, -1);
  void* dev_a = backend_->allocate_segment(bytes);
  void* dev_b = backend_->allocate_segment(bytes);
  ASSERT_TRUE(src && dst && dev_a && dev_b);
  std::memset(dst, 0, bytes);

  // h2d on s1, d2d on s2, d2h on the default stream: only the events order them.
  Stream s1 = backend_->create_stream();
  Stream s2 = backend_->create_stream();
  Event uploaded = backend_->create_event();
  Event moved = backend_->create_event();
  backend_->copy_async(dev_a, src, bytes, CopyKind::host_to_device, s1);
  backend_->record(uploaded, s1);
  backend_->wait(s2, uploaded);
  backend_->copy_async(dev_b, dev_a, bytes, CopyKind::device_to_device, s2);
  backend_->record(moved, s2);
  backend_->wait(Backend::default_stream(), moved);
  backend_->copy_async(dst, dev_b, bytes, CopyKind::device_to_host, Backend::default_stream());
  backend_->synchronize(Backend::default_stream());
  EXPECT_TRUE(backend_->query(uploaded));
  EXPECT_TRUE(backend_->query(moved));
  EXPECT_EQ(std::memcmp(src, dst, bytes), 0);

  backend_->destroy_event(uploaded);
  backend_->destroy_event(moved);
  backend_->free_segment(dev_a, bytes);
  backend_->free_segment(dev_b, bytes);
  backend_->free_pinned(src, bytes);
  backend_->free_pinned(dst, bytes);
}

TEST_F(CudaBackendTest, EventsCompleteAndDestroyedEventsAreRejected) {
  Event never = backend_->create_event();
  EXPECT_TRUE(backend_->query(never));  // never recorded: complete

  const std::size_t bytes = 64 * kMiB;
  void* host = random_pinned(bytes, 7);
  void* dev = backend_->allocate_segment(bytes);
  ASSERT_TRUE(host && dev);
  Stream s = backend_->create_stream();
  Event done = backend_->create_event();
  backend_->copy_async(dev, host, bytes, CopyKind::host_to_device, s);
  backend_->record(done, s);
  backend_->synchronize(done);
  EXPECT_TRUE(backend_->query(done));

  backend_->destroy_event(done);
  EXPECT_THROW(backend_->record(done, s), LogicError);
  EXPECT_THROW((void)backend_->query(done), LogicError);
  EXPECT_THROW(backend_->wait(s, done), LogicError);
  backend_->destroy_event(done);  // logged, not fatal
  EXPECT_THROW((void)backend_->query(Event{}), LogicError);
  Event fresh = backend_->create_event();
  EXPECT_NE(fresh, done);  // ids are not reused, so stale handles stay detectable

  backend_->destroy_event(never);
  backend_->destroy_event(fresh);
  backend_->free_segment(dev, bytes);
  backend_->free_pinned(host, bytes);
}

TEST_F(CudaBackendTest, NullNativeHandleIsTheDefaultStream) {
  EXPECT_EQ(backend_->stream_from_native(nullptr), Backend::default_stream());
  EXPECT_EQ(backend_->native_handle(Backend::default_stream()), nullptr);
  Stream s = backend_->create_stream();
  EXPECT_NE(s, Backend::default_stream());
  void* native = backend_->native_handle(s);
  EXPECT_NE(native, nullptr);
  EXPECT_EQ(backend_->stream_from_native(native), s);
  EXPECT_THROW((void)backend_->native_handle(Stream{12345}), LogicError);
  backend_->synchronize(s);
  backend_->synchronize_all();
}

TEST_F(CudaBackendTest, AdoptsForeignStreamsWithoutOwningThem) {
  // Another backend's stream stands in for PyTorch's: a cudaStream_t this one did not create.
  auto owner = make_cuda_backend(0);
  Stream theirs = owner->create_stream();
  void* native = owner->native_handle(theirs);

  Stream adopted = backend_->stream_from_native(native);
  EXPECT_NE(adopted, Backend::default_stream());
  EXPECT_EQ(backend_->native_handle(adopted), native);
  EXPECT_EQ(backend_->stream_from_native(native), adopted);

  const std::size_t bytes = 4 * kMiB;
  void* src = random_pinned(bytes, 3);
  void* dst = backend_->allocate_pinned(bytes, -1);
  void* dev = backend_->allocate_segment(bytes);
  ASSERT_TRUE(src && dst && dev);
  backend_->copy_async(dev, src, bytes, CopyKind::host_to_device, adopted);
  backend_->copy_async(dst, dev, bytes, CopyKind::device_to_host, adopted);
  backend_->synchronize(adopted);
  EXPECT_EQ(std::memcmp(src, dst, bytes), 0);
  backend_->free_segment(dev, bytes);
  backend_->free_pinned(src, bytes);
  backend_->free_pinned(dst, bytes);
  // `owner` is destroyed first and destroys its stream; this backend must not touch it later.
}

TEST_F(CudaBackendTest, LaunchHandsTheKernelItsNativeStream) {
  Stream s = backend_->create_stream();
  void* seen = reinterpret_cast<void*>(std::uintptr_t{1});
  Kernel k{"probe", {}, {}, [&seen](void* stream) { seen = stream; }};
  backend_->launch(s, k);
  EXPECT_EQ(seen, backend_->native_handle(s));

  Kernel host_only{"cpu_only", {}, [] {}, {}};
  try {
    backend_->launch(s, host_only);
    ADD_FAILURE() << "a kernel without a CUDA implementation was launched";
  } catch (const LogicError& e) {
    EXPECT_NE(std::string(e.what()).find("kernel cpu_only has no CUDA implementation"),
              std::string::npos)
        << e.what();
  }
}

TEST_F(CudaBackendTest, ZeroByteCopiesAreNoOps) {
  backend_->copy_async(nullptr, nullptr, 0, CopyKind::host_to_device, Backend::default_stream());
  backend_->synchronize(Backend::default_stream());
}

}  // namespace
}  // namespace memento
