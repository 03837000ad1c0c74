#include "policies/plan/chain_dp.hpp"

#include <algorithm>
#include <cmath>
#include <map>

#include "memento/error.hpp"

namespace memento::plan {

double chain_limit(const ChainShape& shape, double budget_bytes) {
  constexpr double kAllocatorMargin = 0.03;
  if (budget_bytes <= 0) return INFINITY;
  return budget_bytes * (1 - kAllocatorMargin) - shape.fixed_bytes - shape.backward_bytes;
}

ChainCosts uniform_chain(const ChainShape& shape) {
  const auto n = static_cast<std::size_t>(shape.blocks);
  return {std::vector<double>(n, shape.input_bytes), std::vector<double>(n, shape.saved_bytes),
          std::vector<double>(n, shape.block_flops)};
}

std::optional<ChainSolution> evaluate_chain(const ChainCosts& c,
                                            const std::vector<BlockState>& states) {
  const std::size_t n = states.size();
  MEMENTO_EXPECTS(c.input.size() == n && c.saved.size() == n && c.flops.size() == n,
                  "evaluate_chain: one state per block");
  ChainSolution sol{states, 0, 0};
  double prefix = 0;
  double working = 0;
  for (std::size_t i = 0; i < n;) {
    working = std::max(working, c.input[i] + c.saved[i]);
    if (states[i] == BlockState::kept) {
      prefix += c.input[i] + c.saved[i];
      ++i;
      continue;
    }
    if (states[i] == BlockState::segment_rest) return std::nullopt;  // not inside a segment
    std::size_t end = i + 1;
    while (end < n && states[end] == BlockState::segment_rest) ++end;
    double restored = 0;
    for (std::size_t k = i; k < end; ++k) {
      restored += c.input[k] + c.saved[k];
      working = std::max(working, c.input[k] + c.saved[k]);
      sol.recompute_flops += c.flops[k];
    }
    sol.peak_bytes = std::max(sol.peak_bytes, prefix + restored);
    prefix += c.input[i];
    i = end;
  }
  sol.peak_bytes = std::max(sol.peak_bytes, prefix + working);
  return sol;
}

std::optional<ChainSolution> solve_chain(const ChainCosts& c, double limit) {
  const std::size_t n = c.input.size();
  MEMENTO_EXPECTS(n > 0 && c.saved.size() == n && c.flops.size() == n,
                  "solve_chain: a chain of at least one block, with all three costs per block");
  // front[i]: prefix memory after i blocks -> the least recompute reaching it, and how.
  struct Entry {
    double cost;
    double prev_prefix;
    std::size_t prev_i;
    bool kept;  // else a segment prev_i .. i-1
  };
  std::vector<std::map<double, Entry>> front(n + 1);
  front[0][0.0] = Entry{0, 0, 0, false};
  const double working = [&] {
    double w = 0;
    for (std::size_t i = 0; i < n; ++i) w = std::max(w, c.input[i] + c.saved[i]);
    return w;
  }();
  auto offer = [&](std::size_t i, double prefix, Entry e) {
    auto [it, inserted] = front[i].try_emplace(prefix, e);
    if (!inserted && e.cost < it->second.cost) it->second = e;
  };
  for (std::size_t i = 0; i < n; ++i) {
    for (const auto& [prefix, entry] : front[i]) {
      if (prefix + working > limit) continue;  // the forward alone does not fit
      offer(i + 1, prefix + c.input[i] + c.saved[i], Entry{entry.cost, prefix, i, true});
      double restored = 0;
      double flops = 0;
      for (std::size_t end = i; end < n; ++end) {
        restored += c.input[end] + c.saved[end];
        flops += c.flops[end];
        if (prefix + restored > limit) break;
        offer(end + 1, prefix + c.input[i], Entry{entry.cost + flops, prefix, i, false});
      }
    }
  }
  std::optional<ChainSolution> best;
  for (const auto& [prefix, entry] : front[n]) {
    if (prefix + working > limit) continue;
    std::vector<BlockState> states(n, BlockState::segment_rest);
    double p = prefix;
    for (std::size_t i = n; i > 0;) {
      const Entry& e = front[i].at(p);
      states[e.prev_i] = e.kept ? BlockState::kept : BlockState::segment_start;
      p = e.prev_prefix;
      i = e.prev_i;
    }
    std::optional<ChainSolution> sol = evaluate_chain(c, states);
    if (!sol || sol->peak_bytes > limit) continue;
    if (!best || sol->recompute_flops < best->recompute_flops ||
        (sol->recompute_flops == best->recompute_flops && sol->peak_bytes < best->peak_bytes))
      best = sol;
  }
  return best;
}

}  // namespace memento::plan
