#include "backends/sim/copy_contention.hpp"

#include <algorithm>
#include <vector>

namespace memento::sim {

double stretched(double start, double seconds, std::initializer_list<Busy> busy) {
  std::vector<Busy> until(busy);
  std::sort(until.begin(), until.end(),
            [](const Busy& a, const Busy& b) { return a.until < b.until; });
  double t = start;
  double left = seconds;  // of the copy, in seconds at the full rate
  for (std::size_t i = 0; i < until.size(); ++i) {
    if (until[i].until <= t) continue;
    double factor = 1;  // the engines busy from t to until[i].until: i and every later one
    for (std::size_t k = i; k < until.size(); ++k) factor *= until[k].factor;
    const double span = until[i].until - t;
    if (left * factor <= span) return t + left * factor - start;
    left -= span / factor;
    t = until[i].until;
  }
  return t + left - start;
}

double both_ways_factor(double first, double second, double together) {
  // The second moves first / f of its work while the first runs, the rest after it:
  // together = first + (second - first / f) when second > first / f; so f = first /
  // (first + second - together).
  // When the pair ended with the first, the second fitted beside it at any factor up to
  // first / second: no contention is seen.
  constexpr double kMost = 100;
  if (together <= first) return 1;
  const double hidden = first + second - together;
  if (hidden * kMost <= first) return kMost;
  return std::clamp(first / hidden, 1.0, kMost);
}

}  // namespace memento::sim
