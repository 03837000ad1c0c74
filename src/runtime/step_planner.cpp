#include "runtime/step_planner.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <numeric>
#include <optional>

namespace memento {
namespace {

// A byte count modelled as a double, saturated: an absurd graph (a fuzzed C API caller) can
// predict more than 2^64 bytes.
std::size_t saturated_bytes(double b) {
  constexpr double kMax = 0x1p64;
  return b >= kMax ? std::numeric_limits<std::size_t>::max()
                   : static_cast<std::size_t>(std::max(0.0, b));
}

// How a decision sits on the step: the points of the use it follows and of the use it
// comes back for.
struct Gap {
  std::size_t from = 0;
  std::size_t to = 0;
};

Gap gap_of(const GraphTensor& t, const TensorDecision& d) {
  return {t.uses[d.after_use], t.uses[d.after_use + 1]};
}

// The first point at or after `from` whose seconds reach `seconds`.
std::size_t first_point_at(const StepGraph& g, std::size_t from, double seconds) {
  auto it = std::lower_bound(g.points.begin() + static_cast<std::ptrdiff_t>(from), g.points.end(),
                             seconds, [](const GraphPoint& p, double s) { return p.seconds < s; });
  return static_cast<std::size_t>(it - g.points.begin());
}

class Evaluator {
 public:
  Evaluator(const StepGraph& g, const PlanInputs& in) : g_(g), in_(in), seen_(g.tensors.size()) {}

  // Whether tensor `p` has no device copy at point `at` under `d`, so a recompute at `at`
  // reruns it too.
  bool absent(std::size_t p, std::size_t at, const std::vector<TensorDecision>& d) const {
    const GraphTensor& t = g_.tensors[p];
    if (t.freed != kNoPoint && t.freed <= at) return true;
    if (d[p].action != PlannedAction::discard) return false;
    const Gap gap = gap_of(t, d[p]);
    return gap.from < at && at < gap.to;
  }

  // Seconds a recompute of `i` at point `at` costs: its producer and every absent ancestor.
  double chain_seconds(std::size_t i, std::size_t at, const std::vector<TensorDecision>& d) {
    ++stamp_;
    double seconds = 0;
    std::vector<std::size_t> work{i};
    seen_[i] = stamp_;
    while (!work.empty() && work.size() < 4096) {
      const GraphTensor& t = g_.tensors[work.back()];
      work.pop_back();
      seconds += t.seconds;
      for (std::size_t p : t.inputs)
        if (p != kNoPoint && seen_[p] != stamp_ && absent(p, at, d)) {
          seen_[p] = stamp_;
          work.push_back(p);
        }
    }
    return seconds;
  }

  PlanEvaluation operator()(const std::vector<TensorDecision>& d) {
    const std::size_t n = g_.points.size();
    delta_.assign(n + 1, 0);
    PlanEvaluation e;
    offloads_.clear();
    for (std::size_t i = 0; i < g_.tensors.size(); ++i) {
      const GraphTensor& t = g_.tensors[i];
      const double b = static_cast<double>(t.bytes);
      delta_[t.created] += b;
      delta_[t.freed == kNoPoint ? n : t.freed] -= b;
      if (d[i].action == PlannedAction::keep) continue;
      const Gap gap = gap_of(t, d[i]);
      if (d[i].action == PlannedAction::offload && in_.can_offload()) {
        offloads_.push_back(i);
        continue;
      }
      e.extra_seconds += chain_seconds(i, gap.to, d);  // a discard (or an offload that cannot)
      if (gap.from + 1 < gap.to) {
        delta_[gap.from + 1] -= b;
        delta_[gap.to] += b;
      }
    }
    e.extra_seconds += schedule_offloads(d);
    double live = 0;
    memory_.resize(n);
    for (std::size_t p = 0; p < n; ++p) {
      live += delta_[p];
      const double bytes = memory_[p] = g_.points[p].other_bytes + live;
      if (bytes > e.peak_bytes) {
        e.peak_bytes = bytes;
        e.peak_point = p;
      }
    }
    return e;
  }

  // The bytes at a point in the last evaluation.
  double memory_at(std::size_t p) const { return memory_[p]; }
  // By tensor, in the last evaluation: the point from which an offloaded tensor is present
  // again (kNoPoint: not offloaded, or its copy out did not fit the host memory).
  const std::vector<std::size_t>& back() const { return back_; }
  // Whether an offloaded tensor's memory is away at point `p` in the last evaluation.
  bool away_at(std::size_t i, std::size_t p) const {
    return away_[i].first <= p && p < away_[i].second;
  }

 private:
  // The copies out in order on one link, the copies back as late as they can on the other;
  // a copy back cannot start before its copy out ends (the lateness is exposed time). The
  // memory is away from the end of the copy out to the start of the copy back. Offloads that
  // would overfill the host memory are discarded instead, as the runtime does.
  double schedule_offloads(const std::vector<TensorDecision>& d) {
    const auto& pts = g_.points;
    std::sort(offloads_.begin(), offloads_.end(), [&](std::size_t a, std::size_t b) {
      return gap_of(g_.tensors[a], d[a]).from < gap_of(g_.tensors[b], d[b]).from;
    });
    out_end_.assign(offloads_.size(), 0);
    away_.assign(g_.tensors.size(), {kNoPoint, kNoPoint});
    back_.assign(g_.tensors.size(), kNoPoint);
    double extra = 0;
    double link_free = 0;
    double host = 0;
    std::vector<std::pair<std::size_t, double>> on_host;  // (point back, bytes)
    for (std::size_t k = 0; k < offloads_.size(); ++k) {
      const std::size_t i = offloads_[k];
      const GraphTensor& t = g_.tensors[i];
      const Gap gap = gap_of(t, d[i]);
      const double b = static_cast<double>(t.bytes);
      std::erase_if(on_host, [&](const auto& h) {
        if (h.first > gap.from) return false;
        host -= h.second;
        return true;
      });
      if (host + b > in_.host_bytes) {  // the pool is full: the runtime discards instead
        out_end_[k] = NAN;
        if (t.recipe) {
          extra += chain_seconds(i, gap.to, d);
          if (gap.from + 1 < gap.to) {
            delta_[gap.from + 1] -= b;
            delta_[gap.to] += b;
          }
        }
        continue;
      }
      host += b;
      on_host.emplace_back(gap.to, b);
      link_free = std::max(link_free, pts[gap.from].seconds) + b / in_.d2h_bandwidth;
      out_end_[k] = link_free;
    }
    // Copies back, latest use first, each ending by its use or by the next copy's start.
    std::vector<std::size_t> order(offloads_.size());
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
      return gap_of(g_.tensors[offloads_[a]], d[offloads_[a]]).to >
             gap_of(g_.tensors[offloads_[b]], d[offloads_[b]]).to;
    });
    double link_start = INFINITY;
    for (std::size_t k : order) {
      if (std::isnan(out_end_[k])) continue;
      const std::size_t i = offloads_[k];
      const GraphTensor& t = g_.tensors[i];
      const Gap gap = gap_of(t, d[i]);
      const double b = static_cast<double>(t.bytes);
      const double end = std::min(pts[gap.to].seconds, link_start);
      const double start = end - b / in_.h2d_bandwidth;
      link_start = start;
      extra += std::max(0.0, out_end_[k] - start);
      const std::size_t away = first_point_at(g_, gap.from + 1, out_end_[k]);
      const std::size_t back = first_point_at(g_, gap.from + 1, start);  // present from here
      back_[i] = back;
      if (away < back && back <= gap.to) {
        delta_[away] -= b;
        delta_[back] += b;
        away_[i] = {away, back};
      }
    }
    return extra;
  }

  const StepGraph& g_;
  const PlanInputs& in_;
  std::vector<double> delta_;
  std::vector<double> memory_;
  std::vector<std::size_t> offloads_;
  std::vector<double> out_end_;
  std::vector<std::pair<std::size_t, std::size_t>> away_;  // by tensor: [away, back)
  std::vector<std::size_t> back_;                          // by tensor: present again from
  std::vector<unsigned> seen_;
  unsigned stamp_ = 0;
};

class Search {
 public:
  Search(const StepGraph& g, const PlanInputs& in) : g_(g), in_(in), eval_(g, in) {
    gaps_.reserve(g.tensors.size());
    for (const GraphTensor& t : g.tensors) gaps_.push_back(widest_gap(g, t));
  }

  // `decide` may be empty: nothing evicted to start with.
  std::vector<TensorDecision> seed(const PlanCandidate* candidate) const {
    std::vector<TensorDecision> d(g_.tensors.size());
    if (candidate == nullptr) return d;
    for (std::size_t i = 0; i < d.size(); ++i) {
      const GraphTensor& t = g_.tensors[i];
      if (t.region < 0 && t.role.empty()) continue;
      if (!evictable(i)) continue;
      PlannedAction a = candidate->decide(t.region, t.role);
      if (a == PlannedAction::offload && !in_.can_offload()) a = PlannedAction::discard;
      if (a == PlannedAction::discard && !t.recipe) a = PlannedAction::keep;
      d[i] = {a, gaps_[i]};
    }
    return d;
  }

  // Evicts, at the predicted peak, what costs the least time per byte until the peak is
  // within the target or nothing there can go.
  PlanEvaluation complete(std::vector<TensorDecision>& d) {
    PlanEvaluation e = eval_(d);
    const double target = in_.target();
    for (std::size_t round = 0; e.peak_bytes > target && round <= d.size(); ++round) {
      const std::size_t at = e.peak_point;
      struct Option {
        std::size_t i;
        PlannedAction a;
        double per_byte;
      };
      std::optional<Option> best;
      const auto consider = [&](Option o) {
        const double b = static_cast<double>(g_.tensors[o.i].bytes);
        if (!best || o.per_byte < best->per_byte ||
            (o.per_byte == best->per_byte && b > static_cast<double>(g_.tensors[best->i].bytes)))
          best = o;
      };
      std::vector<std::pair<double, std::size_t>> offloadable;  // (gap seconds, tensor)
      for (std::size_t i = 0; i < d.size(); ++i) {
        // An offload whose memory is still here at the peak (its copy out ends later, or
        // its copy back starts earlier) may be discarded instead.
        if (d[i].action == PlannedAction::offload && g_.tensors[i].recipe &&
            !eval_.away_at(i, at)) {
          const Gap gap = gap_of(g_.tensors[i], d[i]);
          if (gap.from < at && at < gap.to) {
            d[i].action = PlannedAction::discard;
            consider(
                {i, PlannedAction::discard,
                 eval_.chain_seconds(i, gap.to, d) / static_cast<double>(g_.tensors[i].bytes)});
            d[i].action = PlannedAction::offload;
          }
          continue;
        }
        if (d[i].action != PlannedAction::keep || !evictable(i)) continue;
        const GraphTensor& t = g_.tensors[i];
        const Gap gap = gap_of(t, {PlannedAction::keep, gaps_[i]});
        if (!(gap.from < at && at < gap.to)) continue;
        const double b = static_cast<double>(t.bytes);
        if (t.recipe) {
          d[i] = {PlannedAction::discard, gaps_[i]};
          consider({i, PlannedAction::discard, eval_.chain_seconds(i, gap.to, d) / b});
          d[i] = {};
        }
        if (in_.can_offload())
          offloadable.emplace_back(g_.points[gap.to].seconds - g_.points[gap.from].seconds, i);
      }
      // An offload's cost depends on the link's other copies: try the few with the longest
      // gaps (the ones most likely to hide) by evaluating the whole step with each.
      constexpr std::size_t kOffloadTries = 4;
      std::partial_sort(offloadable.begin(),
                        offloadable.begin() + static_cast<std::ptrdiff_t>(
                                                  std::min(kOffloadTries, offloadable.size())),
                        offloadable.end(), std::greater<>());
      for (std::size_t k = 0; k < std::min(kOffloadTries, offloadable.size()); ++k) {
        const std::size_t i = offloadable[k].second;
        d[i] = {PlannedAction::offload, gaps_[i]};
        const PlanEvaluation with = eval_(d);
        const bool away = eval_.memory_at(at) < e.peak_bytes;  // the copy out ends in time
        d[i] = {};
        if (!away) continue;
        consider({i, PlannedAction::offload,
                  std::max(0.0, with.extra_seconds - e.extra_seconds) /
                      static_cast<double>(g_.tensors[i].bytes)});
      }
      if (!best) break;
      d[best->i] = {best->a, gaps_[best->i]};
      e = eval_(d);
    }
    return e;
  }

  // Gives up evictions the target does not need, the costliest first.
  PlanEvaluation trim(std::vector<TensorDecision>& d, PlanEvaluation e) {
    std::vector<std::pair<double, std::size_t>> evicted;
    for (std::size_t i = 0; i < d.size(); ++i)
      if (d[i].action != PlannedAction::keep) {
        const Gap gap = gap_of(g_.tensors[i], d[i]);
        const double cost = d[i].action == PlannedAction::discard
                                ? eval_.chain_seconds(i, gap.to, d)
                                : 0;  // offloads last: usually free
        evicted.emplace_back(cost / static_cast<double>(g_.tensors[i].bytes), i);
      }
    std::sort(evicted.begin(), evicted.end(), std::greater<>());
    for (const auto& [cost, i] : evicted) {
      const TensorDecision was = d[i];
      d[i] = {};
      const PlanEvaluation without = eval_(d);
      if (without.peak_bytes <= std::max(in_.target(), e.peak_bytes) &&
          without.extra_seconds <= e.extra_seconds)
        e = without;
      else
        d[i] = was;
    }
    return e;
  }

  bool evictable(std::size_t i) const {
    const GraphTensor& t = g_.tensors[i];
    return t.evictable && gaps_[i] != kNoPoint && (t.recipe || in_.can_offload());
  }

 private:
  const StepGraph& g_;
  const PlanInputs& in_;
  Evaluator eval_;
  std::vector<std::size_t> gaps_;
};

StepPlan search(const StepGraph& g, const PlanInputs& in,
                const std::vector<PlanCandidate>& candidates) {
  Search s(g, in);
  StepPlan best;
  std::optional<PlanEvaluation> best_eval;
  const double target = in.target();
  const auto better = [&](const PlanEvaluation& a, const PlanEvaluation& b) {
    const bool fa = a.peak_bytes <= target, fb = b.peak_bytes <= target;
    if (fa != fb) return fa;
    if (!fa) return a.peak_bytes < b.peak_bytes;
    return a.extra_seconds < b.extra_seconds;
  };
  for (std::size_t c = 0; c <= candidates.size(); ++c) {
    const PlanCandidate* candidate = c == 0 ? nullptr : &candidates[c - 1];
    std::vector<TensorDecision> d = s.seed(candidate);
    PlanEvaluation e = s.trim(d, s.complete(d));
    if (!best_eval || better(e, *best_eval)) {
      best_eval = e;
      best.decisions = std::move(d);
      best.summary.start = candidate ? candidate->name : "graph";
    }
  }
  StepPlanSummary& sum = best.summary;
  sum.candidates = static_cast<int>(candidates.size()) + 1;
  sum.budget_bytes = saturated_bytes(in.budget_bytes);
  sum.target_bytes = saturated_bytes(target);
  sum.predicted_peak = saturated_bytes(best_eval->peak_bytes);
  sum.predicted_extra_seconds = best_eval->extra_seconds;
  sum.observed_seconds = g.seconds();
  sum.fits = best_eval->peak_bytes <= target;
  const auto count = [](auto& c, PlannedAction a, std::size_t b) {
    switch (a) {
      case PlannedAction::keep:
        ++c.kept, c.kept_bytes += b;
        break;
      case PlannedAction::offload:
        ++c.offloaded, c.offloaded_bytes += b;
        break;
      case PlannedAction::discard:
        ++c.discarded, c.discarded_bytes += b;
        break;
    }
  };
  std::map<int, RegionPlan> regions;
  for (std::size_t i = 0; i < g.tensors.size(); ++i) {
    if (!s.evictable(i)) continue;
    const GraphTensor& t = g.tensors[i];
    count(sum, best.decisions[i].action, t.bytes);
    if (t.region >= 0) {
      RegionPlan& r = regions[t.region];
      r.region = t.region;
      count(r, best.decisions[i].action, t.bytes);
    }
  }
  for (const auto& [region, r] : regions) sum.regions.push_back(r);
  return best;
}

}  // namespace

std::size_t widest_gap(const StepGraph& g, const GraphTensor& t) {
  std::size_t best = kNoPoint;
  double widest = -1;
  for (std::size_t k = 0; k + 1 < t.uses.size(); ++k) {
    const double w = g.points[t.uses[k + 1]].seconds - g.points[t.uses[k]].seconds;
    if (t.uses[k] + 1 < t.uses[k + 1] && w > widest) {
      widest = w;
      best = k;
    }
  }
  return best;
}

PlanEvaluation evaluate_plan(const StepGraph& graph, const PlanInputs& inputs,
                             const std::vector<TensorDecision>& decisions) {
  Evaluator eval(graph, inputs);
  return eval(decisions);
}

StepPlan plan_step(const StepGraph& graph, const PlanInputs& inputs,
                   const std::vector<PlanCandidate>& candidates) {
  StepPlan plan = search(graph, inputs, candidates);
  {
    // The prefetch schedule of the chosen decisions: one more evaluation.
    Evaluator eval(graph, inputs);
    (void)eval(plan.decisions);
    plan.copy_back_at.assign(graph.tensors.size(), kNoPoint);
    for (std::size_t i = 0; i < graph.tensors.size(); ++i) {
      // Present from `back` (after the use it follows): the copy starts after the point before.
      const std::size_t back = eval.back()[i];
      if (back != kNoPoint) plan.copy_back_at[i] = back - 1;
    }
  }
  StepPlanSummary& sum = plan.summary;
  // A step predicted at more than twice the observed one thrashes: find, by bisection on
  // the budget, the smallest that keeps it under (the planner is cheap next to a step).
  if (sum.observed_seconds > 0 && sum.predicted_extra_seconds > sum.observed_seconds) {
    sum.thrashing = true;
    PlanInputs probe = inputs;
    double lo = inputs.budget_bytes;
    double hi = 0;
    for (const GraphPoint& p : graph.points) hi = std::max(hi, p.other_bytes);
    for (const GraphTensor& t : graph.tensors) hi += static_cast<double>(t.bytes);
    hi /= 1 - inputs.margin;
    probe.budget_bytes = hi;
    if (search(graph, probe, candidates).summary.predicted_extra_seconds <= sum.observed_seconds) {
      for (int i = 0; i < 12 && hi - lo > 1 << 20; ++i) {
        probe.budget_bytes = (lo + hi) / 2;
        const StepPlanSummary s = search(graph, probe, candidates).summary;
        (s.fits && s.predicted_extra_seconds <= sum.observed_seconds ? hi : lo) =
            probe.budget_bytes;
      }
      sum.thrash_free_budget = saturated_bytes(std::ceil(hi));
    }
  }
  return plan;
}

}  // namespace memento
