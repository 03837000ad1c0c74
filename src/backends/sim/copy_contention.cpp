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

}  // namespace memento::sim
