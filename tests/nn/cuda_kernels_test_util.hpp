// Shared by the CUDA kernel tests (cuda_kernels_*_test.cpp): device buffers, random inputs,
// comparisons against double references, and the typed fixture (one stream and one Blas per test,
// for S = float and S = bf16). The fixture and helpers live in a named namespace, not an
// anonymous one, so that every file's tests share one fixture type: googletest requires all
// tests of a suite to use the same fixture class.
#pragma once

#include <gtest/gtest.h>

#if MEMENTO_HAS_CUDA

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "memento/backends.hpp"
#include "nn/kernels/cuda/kernels_cuda.hpp"

namespace memento::nn::cuda::kernel_test {

// ---- host helpers -----------------------------------------------------------------------
inline void check_cuda(cudaError_t err, const char* call) {
  if (err != cudaSuccess)
    throw std::runtime_error(std::string(call) + " failed: " + cudaGetErrorString(err));
}
#define TEST_CUDA(call) check_cuda((call), #call)

/// A device array of n T, freed on destruction.
template <typename T>
class DeviceBuffer {
 public:
  explicit DeviceBuffer(std::size_t n) : n_(n) {
    TEST_CUDA(cudaMalloc(&ptr_, std::max<std::size_t>(n, 1) * sizeof(T)));
  }
  explicit DeviceBuffer(const std::vector<T>& host) : DeviceBuffer(host.size()) { upload(host); }
  ~DeviceBuffer() { (void)cudaFree(ptr_); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  T* get() { return static_cast<T*>(ptr_); }
  void upload(const std::vector<T>& host) {
    if (host.size() != n_) throw std::logic_error("DeviceBuffer::upload: size mismatch");
    TEST_CUDA(cudaMemcpy(ptr_, host.data(), n_ * sizeof(T), cudaMemcpyHostToDevice));
  }
  /// Synchronous: cudaMemcpy on the legacy default stream waits for the test's stream.
  std::vector<T> download() const {
    std::vector<T> host(n_);
    TEST_CUDA(cudaMemcpy(host.data(), ptr_, n_ * sizeof(T), cudaMemcpyDeviceToHost));
    return host;
  }

 private:
  void* ptr_ = nullptr;
  std::size_t n_;
};

inline double to_d(float x) { return x; }
inline double to_d(bf16 x) { return to_float(x); }

template <typename S>
S from_f(float x) {
  if constexpr (std::is_same_v<S, float>) {
    return x;
  } else {
    return to_bf16(x);
  }
}

template <typename T>
std::vector<double> to_double(const std::vector<T>& v) {
  std::vector<double> out(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) out[i] = to_d(v[i]);
  return out;
}

template <typename T>
std::vector<T> random_vector(std::size_t n, std::mt19937& rng, float lo = -1.0f, float hi = 1.0f) {
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<T> v(n);
  for (auto& x : v) x = from_f<T>(dist(rng));
  return v;
}

inline std::vector<std::int32_t> random_ints(std::size_t n, int bound, std::mt19937& rng) {
  std::uniform_int_distribution<std::int32_t> dist(0, bound - 1);
  std::vector<std::int32_t> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

template <typename T>
bool same_bits(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0;
}

/// |got - want| <= rtol |want| + atol for every element; reports the first few misses.
template <typename T>
void expect_near(const std::vector<T>& got, const std::vector<double>& want, double rtol,
                 double atol, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  int misses = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    const double g = to_d(got[i]);
    if (std::abs(g - want[i]) <= rtol * std::abs(want[i]) + atol) continue;
    if (++misses <= 5) ADD_FAILURE() << what << "[" << i << "] = " << g << ", want " << want[i];
  }
  EXPECT_EQ(misses, 0) << what << ": elements off the reference";
}

// ---- the fixture: one stream and one Blas per test, for S = float and S = bf16 ----------
template <typename S>
class CudaKernelsTest : public ::testing::Test {
 protected:
  // f32 to ~1e-4 relative; bf16 (8-bit mantissa, a rounding per stored value) to ~2e-2.
  static constexpr double kTol = std::is_same_v<S, float> ? 1e-4 : 2e-2;

  void SetUp() override {
    if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device is visible to this process";
    TEST_CUDA(cudaStreamCreate(&stream_));
    blas_ = std::make_unique<Blas>(stream_);
  }
  void TearDown() override {
    blas_.reset();
    if (stream_ != nullptr) (void)cudaStreamDestroy(stream_);
  }

  void* stream() const { return stream_; }
  void sync() const { TEST_CUDA(cudaStreamSynchronize(stream_)); }

  std::mt19937 rng_{20240611};
  cudaStream_t stream_ = nullptr;
  std::unique_ptr<Blas> blas_;
};

struct StorageName {
  template <typename S>
  static std::string GetName(int) {
    return std::is_same_v<S, float> ? "f32" : "bf16";
  }
};
using StorageTypes = ::testing::Types<float, bf16>;
TYPED_TEST_SUITE(CudaKernelsTest, StorageTypes, StorageName);

}  // namespace memento::nn::cuda::kernel_test

#endif  // MEMENTO_HAS_CUDA
