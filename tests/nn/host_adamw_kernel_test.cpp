// The host AdamW's CPU step (adamw_host_update on a thread pool): the same bits as the scalar
// cpu::adamw_update for any thread count and size, with fp32 or bf16 gradients in and fp32
// or bf16 parameters out.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "nn/kernels/cpu/adamw_host.hpp"
#include "nn/kernels/cpu/kernels_cpu.hpp"
#include "nn/kernels/cpu/thread_pool.hpp"
#include "nn/kernels/cuda/kernels_cuda.hpp"  // bf16 conversions: constexpr host code

namespace memento::nn::cpu {
namespace {

struct Arrays {
  std::vector<float> p, g, m, v;
};

Arrays random_arrays(std::size_t n, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  Arrays a;
  for (std::size_t i = 0; i < n; ++i) {
    a.p.push_back(normal(rng));
    a.g.push_back(normal(rng) * 1e-2f);
    a.m.push_back(normal(rng) * 1e-3f);
    a.v.push_back(std::abs(normal(rng)) * 1e-5f);
  }
  return a;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// Runs the fast update over `threads` parts, as HostAdamW does.
void fast_update(ThreadPool& pool, const AdamWBuffers& b, std::size_t n, const AdamWScalars& s) {
  pool.run([&](int part, int parts) {
    const Range r = split(n, part, parts);
    adamw_host_update(b, r.begin, r.end, s);
  });
}

const std::size_t kSizes[] = {1, 3, 15, 16, 17, 255, 2047, 2048, 2049, 4097, 40001, 100003};

TEST(HostAdamWKernel, Fp32BitIdenticalToTheScalarReferenceForAnyThreadCount) {
  const AdamWScalars s{3e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, 3};
  for (int threads = 1; threads <= 4; ++threads) {
    ThreadPool pool(threads);
    ASSERT_EQ(pool.threads(), threads);
    for (std::size_t n : kSizes) {
      SCOPED_TRACE(::testing::Message() << threads << " threads, n " << n);
      Arrays ref = random_arrays(n, n * 31 + 7);
      Arrays fast = ref;
      adamw_update(ref.p.data(), ref.g.data(), ref.m.data(), ref.v.data(), n, s.lr, s.beta1,
                   s.beta2, s.eps, s.weight_decay, s.t);
      std::vector<float> out(n, -1.0f);
      AdamWBuffers b{.master = fast.p.data(),
                     .m = fast.m.data(),
                     .v = fast.v.data(),
                     .grad_f32 = fast.g.data(),
                     .out_f32 = out.data()};
      fast_update(pool, b, n, s);
      EXPECT_TRUE(same_bits(ref.p, fast.p));
      EXPECT_TRUE(same_bits(ref.m, fast.m));
      EXPECT_TRUE(same_bits(ref.v, fast.v));
      EXPECT_TRUE(same_bits(ref.p, out)) << "the fp32 parameter copy is the master weights";
    }
  }
}

TEST(HostAdamWKernel, Bf16WriteBackAndBf16GradientsBitIdentical) {
  const AdamWScalars s{1e-3f, 0.9f, 0.999f, 1e-8f, 0.0f, 1};
  for (int threads = 1; threads <= 4; ++threads) {
    ThreadPool pool(threads);
    for (std::size_t n : kSizes) {
      SCOPED_TRACE(::testing::Message() << threads << " threads, n " << n);
      Arrays ref = random_arrays(n, n + 99);
      // bf16 gradients: the reference sees them widened.
      std::vector<std::uint16_t> g16(n);
      for (std::size_t i = 0; i < n; ++i) {
        g16[i] = cuda::to_bf16(ref.g[i]).bits;
        ref.g[i] = cuda::to_float(cuda::bf16{g16[i]});
      }
      Arrays fast = ref;
      adamw_update(ref.p.data(), ref.g.data(), ref.m.data(), ref.v.data(), n, s.lr, s.beta1,
                   s.beta2, s.eps, s.weight_decay, s.t);
      std::vector<std::uint16_t> out(n);
      AdamWBuffers b{.master = fast.p.data(),
                     .m = fast.m.data(),
                     .v = fast.v.data(),
                     .grad_bf16 = g16.data(),
                     .out_bf16 = out.data()};
      fast_update(pool, b, n, s);
      EXPECT_TRUE(same_bits(ref.p, fast.p));
      EXPECT_TRUE(same_bits(ref.m, fast.m));
      EXPECT_TRUE(same_bits(ref.v, fast.v));
      std::size_t wrong = 0;
      for (std::size_t i = 0; i < n; ++i) wrong += out[i] != cuda::to_bf16(ref.p[i]).bits;
      EXPECT_EQ(wrong, 0u) << "the bf16 parameter is to_bf16 of the master weight";
    }
  }
}

TEST(HostAdamWKernel, RoundingToBf16MatchesToBf16OnSpecialValues) {
  std::vector<float> in = {0.0f,
                           -0.0f,
                           1.0f,
                           1.00390625f,  // a tie: rounds to even
                           1.01171875f,  // a tie: rounds up to even
                           std::numeric_limits<float>::infinity(),
                           -std::numeric_limits<float>::infinity(),
                           std::numeric_limits<float>::quiet_NaN(),
                           -std::numeric_limits<float>::quiet_NaN(),
                           std::numeric_limits<float>::max(),
                           std::numeric_limits<float>::denorm_min(),
                           3.4e38f};
  std::mt19937 rng(5);
  std::uniform_int_distribution<std::uint32_t> bits;
  for (int i = 0; i < 4000; ++i) in.push_back(std::bit_cast<float>(bits(rng)));
  std::vector<std::uint16_t> out(in.size());
  f32_to_bf16(out.data(), in.data(), in.size());
  for (std::size_t i = 0; i < in.size(); ++i)
    EXPECT_EQ(out[i], cuda::to_bf16(in[i]).bits)
        << "input bits 0x" << std::hex << std::bit_cast<std::uint32_t>(in[i]);
}

TEST(HostAdamWKernel, PoolRunsEveryPartOnceAndRethrows) {
  ThreadPool pool(3);
  std::vector<int> hits(3, 0);
  for (int round = 0; round < 50; ++round) pool.run([&](int part, int) { ++hits[part]; });
  EXPECT_EQ(hits, (std::vector<int>{50, 50, 50}));
  EXPECT_THROW(pool.run([](int part, int) {
    if (part == 2) throw std::runtime_error("part 2");
  }),
               std::runtime_error);
  pool.run([&](int part, int) { ++hits[part]; });  // still usable
  EXPECT_EQ(hits[1], 51);
}

TEST(HostAdamWKernel, SplitCoversTheRangeInAlignedDisjointParts) {
  for (std::size_t n : kSizes) {
    for (int parts = 1; parts <= 5; ++parts) {
      std::size_t next = 0;
      for (int p = 0; p < parts; ++p) {
        const Range r = split(n, p, parts);
        EXPECT_EQ(r.begin, next);
        EXPECT_TRUE(r.begin % 16 == 0 || r.begin == n);
        EXPECT_LE(r.begin, r.end);
        next = r.end;
      }
      EXPECT_EQ(next, n);
    }
  }
}

}  // namespace
}  // namespace memento::nn::cpu
