// The dropout mask as a pure function of (seed, index): counter-based, so the CPU and CUDA
// kernels draw the same mask, and a recompute with the recorded RNG state draws it again.
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define MEMENTO_HD __host__ __device__
#else
#define MEMENTO_HD
#endif

namespace memento::nn {

/// splitmix64: a full-period mix of a 64-bit counter (Steele, Lea, Flood 2014).
MEMENTO_HD inline std::uint64_t mix64(std::uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

/// Whether element `index` survives dropout with drop probability `p`, for the stream of
/// random numbers named by `seed`. Uses the top 24 bits as a uniform draw in [0, 1).
MEMENTO_HD inline bool dropout_keep(std::uint64_t seed, std::uint64_t index, float p) {
  const std::uint64_t r = mix64(seed ^ mix64(index));
  const float u = static_cast<float>(r >> 40) * (1.0f / 16777216.0f);
  return u >= p;
}

}  // namespace memento::nn
