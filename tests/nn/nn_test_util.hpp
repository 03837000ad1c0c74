// Helpers for the nn kernel tests: seeded random tensors and a central finite-difference check.
#pragma once

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <vector>

namespace memento::nn::testing {

/// The seed of a test: MEMENTO_NN_SEED from the environment when set (to replay a failure),
/// else the test's own default. Tests print it with SCOPED_TRACE so a failure names it.
inline std::uint64_t test_seed(std::uint64_t fallback) {
  if (const char* env = std::getenv("MEMENTO_NN_SEED")) return std::strtoull(env, nullptr, 0);
  return fallback;
}

inline std::string seed_trace(std::uint64_t seed) {
  return fmt::format("seed={:#x} (replay with MEMENTO_NN_SEED={:#x})", seed, seed);
}

/// n values drawn uniformly from [lo, hi).
template <typename T>
std::vector<T> random_vector(std::mt19937_64& rng, std::size_t n, double lo = -1.0,
                             double hi = 1.0) {
  std::uniform_real_distribution<double> dist(lo, hi);
  std::vector<T> v(n);
  for (auto& x : v) x = static_cast<T>(dist(rng));
  return v;
}

inline std::vector<std::int32_t> random_tokens(std::mt19937_64& rng, std::size_t n, int vocab) {
  std::uniform_int_distribution<std::int32_t> dist(0, vocab - 1);
  std::vector<std::int32_t> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

template <typename T>
std::vector<T> nan_vector(std::size_t n) {
  return std::vector<T>(n, std::numeric_limits<T>::quiet_NaN());
}

/// sum_i w[i] * out[i]: the scalar loss whose gradient with respect to out is w.
inline double weighted_sum(const std::vector<double>& out, const std::vector<double>& w) {
  double s = 0;
  for (std::size_t i = 0; i < out.size(); ++i) s += out[i] * w[i];
  return s;
}

/// after - before, element-wise: the part a backward kernel accumulated into a prefilled buffer.
inline std::vector<double> accumulated(const std::vector<double>& after,
                                       const std::vector<double>& before) {
  std::vector<double> d(after.size());
  for (std::size_t i = 0; i < d.size(); ++i) d[i] = after[i] - before[i];
  return d;
}

struct GradCheck {
  int mismatches = 0;
  double worst_rel_error = 0;
  std::string report;
};

/// Compares `grad` (analytic, d loss / d x) with central differences of `loss`, perturbing each
/// x[i] in place (and restoring it). An element passes when
///   |analytic - numeric| <= rtol * max(|analytic|, |numeric|) + atol_rel * max_j |analytic_j|,
/// the second term covering entries whose true gradient is 0 (seen as differencing noise).
/// With double, h = 1e-5 and O(1) values the differencing error is ~1e-9, well inside rtol.
inline GradCheck check_gradient(const std::string& name, std::vector<double>& x,
                                const std::vector<double>& grad,
                                const std::function<double()>& loss, double rtol = 1e-6,
                                double atol_rel = 1e-8, double h = 1e-5) {
  GradCheck result;
  double scale = 0;
  for (double g : grad) scale = std::max(scale, std::abs(g));
  if (grad.size() != x.size()) {
    result.mismatches = 1;
    result.report =
        fmt::format("{}: gradient has {} entries for {} inputs\n", name, grad.size(), x.size());
    return result;
  }
  for (std::size_t i = 0; i < x.size(); ++i) {
    const double xi = x[i];
    x[i] = xi + h;
    const double up = loss();
    x[i] = xi - h;
    const double down = loss();
    x[i] = xi;
    const double numeric = (up - down) / (2 * h);
    const double analytic = grad[i];
    const double err = std::abs(analytic - numeric);
    const double mag = std::max(std::abs(analytic), std::abs(numeric));
    if (mag > 1e-3 * scale) result.worst_rel_error = std::max(result.worst_rel_error, err / mag);
    if (!(err <= rtol * mag + atol_rel * scale)) {
      if (++result.mismatches <= 8) {
        result.report += fmt::format("{}[{}]: analytic {:.12g}, numeric {:.12g}, |diff| {:.3g}\n",
                                     name, i, analytic, numeric, err);
      }
    }
  }
  return result;
}

}  // namespace memento::nn::testing
