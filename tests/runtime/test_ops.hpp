// Small ops for runtime tests: deterministic CPU kernels whose output depends on every
// input and on the recorded RNG state.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "memento/op.hpp"

namespace memento::testing {

inline std::uint64_t splitmix(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

/// out[i] = 0.5 * sum_k in_k[i % n_k] + noise(rng, i): every output depends on every input
/// and on the random state, like a layer with dropout.
class MixOp final : public Op {
 public:
  /// `extra_flops` only changes the cost (what the sim backend times), not the result.
  explicit MixOp(double extra_flops = 0) : extra_flops_(extra_flops) {}
  std::string name() const override { return "mix"; }
  KernelCost cost(std::span<const std::size_t> in, std::size_t out) const override {
    double bytes = static_cast<double>(out);
    for (std::size_t b : in) bytes += static_cast<double>(b);
    return {static_cast<double>(out / 4) * static_cast<double>(in.size() + 1) + extra_flops_, bytes,
            false};
  }
  Kernel make_kernel(std::span<const Storage> in, Storage out, const RngState& rng) const override {
    std::vector<Storage> inputs(in.begin(), in.end());
    return Kernel{"mix", cost(sizes(inputs), out.bytes),
                  [inputs, out, rng] {
                    auto* y = static_cast<float*>(out.data);
                    std::size_t n = out.bytes / sizeof(float);
                    for (std::size_t i = 0; i < n; ++i) {
                      float acc = 0;
                      for (const Storage& s : inputs)
                        acc += static_cast<const float*>(s.data)[i % (s.bytes / sizeof(float))];
                      std::uint64_t r = splitmix(rng.seed ^ (rng.offset + i));
                      y[i] = 0.5f * acc + static_cast<float>(r >> 40) * 1e-7f;
                    }
                  },
                  [](void*) {}};
  }

 private:
  double extra_flops_ = 0;
  static std::vector<std::size_t> sizes(const std::vector<Storage>& in) {
    std::vector<std::size_t> out;
    for (const Storage& s : in) out.push_back(s.bytes);
    return out;
  }
};

}  // namespace memento::testing
