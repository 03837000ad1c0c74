#include "cli/plan.hpp"

#include <fmt/format.h>

#include <algorithm>

#include "cli/compare.hpp"
#include "cli/workload.hpp"
#include "memento/backends.hpp"
#include "memento/config.hpp"

namespace memento::cli {
namespace {

// The budget-only path's plan block by block, where the model marks blocks.
void print_regions(const StepPlanSummary& plan) {
  if (plan.regions.empty()) return;
  fmt::print("budget-only path, per block (tensors kept / offloaded / recomputed, bytes):\n");
  for (const RegionPlan& r : plan.regions)
    fmt::print(
        "  block {:>3}: keep {:>3} ({:>10}), offload {:>3} ({:>10}), recompute {:>3} ({:>10})\n",
        r.region, r.kept, format_bytes(r.kept_bytes), r.offloaded, format_bytes(r.offloaded_bytes),
        r.discarded, format_bytes(r.discarded_bytes));
}

// A percentage in plan's --budget is of the unlimited peak, as in compare.
BudgetSpec asked_budget(const PlanOptions& o) {
  return parse_budget(o.budget, o.sources.budget, {.bare_percent = BudgetBase::peak});
}

// Every probe trains the same workload: auto's choices are made once, for the budget asked
// (a share of the unlimited peak is not known yet: the device's capacity stands for it).
CompareOptions base_options(const PlanOptions& o) {
  CompareOptions c;
  c.workload = o.workload;
  const DeviceSpec device = parse_device(o.device, o.sources.device);
  const BudgetSpec asked = asked_budget(o);
  const std::size_t capacity = device_capacity(device);
  const std::size_t budget =
      asked.is_share() && asked.base == BudgetBase::peak ? capacity : asked.resolve(capacity);
  const ModelSpec m = parse_model(o.workload, device, budget);
  c.workload.dtype = m.dtype() == nn::DType::bf16 ? "bf16" : "fp32";
  c.workload.optimizer = m.optimizer == nn::OptimizerPlacement::host ? "host" : "device";
  c.device = o.device;
  c.policy = o.policy;
  c.host_budget = o.host_budget;
  c.sources = o.sources;
  c.steps = o.steps;
  c.seed = o.seed;
  c.print = false;
  return c;
}

/// The first strategy (of all) that fits `bytes`, if any.
std::optional<std::string> fitting(const PlanOptions& o, std::size_t bytes) {
  CompareOptions c = base_options(o);
  c.budgets = {std::to_string(bytes)};
  c.strategies = {"all"};
  try {
    for (const RunResult& r : run_compare(c).runs)
      if (r.fits) return r.strategy.name;
  } catch (const NothingFits&) {
  }
  return std::nullopt;
}

}  // namespace

int run_plan(const PlanOptions& o) {
  CompareOptions c = base_options(o);
  c.budgets = {o.budget};
  c.strategies = {"all"};
  std::optional<CompareResult> result;
  try {
    result = run_compare(c);
  } catch (const NothingFits&) {
  }
  const BudgetSpec asked = asked_budget(o);
  fmt::print("memento plan: {} on {}, budget {}{}\n", o.workload.model, o.device, o.budget,
             asked.is_share() ? fmt::format(" ({})", asked.describe()) : "");
  if (result) {
    for (const auto& [key, value] : result->summary) fmt::print("  {}: {}\n", key, value);
    const RunResult* best = nullptr;
    for (const RunResult& r : result->runs)
      if (r.fits && r.slowdown && (best == nullptr || *r.slowdown < *best->slowdown)) best = &r;
    if (best != nullptr) {
      fmt::print(
          "recommended: {} (plan {}, policy {}): predicted peak {}, step {:.4f} s, overhead "
          "{:+.1f}% against the unlimited {} at {:.4f} s\n",
          best->strategy.name, best->strategy.plan, best->strategy.policy,
          format_bytes(best->peak_bytes), *best->step_time_s, 100 * *best->overhead,
          format_bytes(result->unlimited.peak_bytes), *result->unlimited.step_time_s);
      if (!best->plan_description.empty()) fmt::print("  plan: {}\n", best->plan_description);
      for (const RunResult& r : result->runs)
        if (r.strategy.observe && r.fits && r.overhead && &r != best)
          fmt::print(
              "budget-only path (a bare budget, as memento train runs it): overhead {:+.1f}%, "
              "plan: {}\n",
              100 * *r.overhead, r.plan_description);
      for (const RunResult& r : result->runs)
        if (r.strategy.observe && r.step_plan) print_regions(*r.step_plan);
      return 0;
    }
  }
  // Nothing fits: bisect between a failing budget and the unlimited peak (which fits) for
  // the smallest budget at which some strategy fits. Each probe runs every strategy.
  CompareOptions u = base_options(o);
  u.budgets = {"100%"};
  u.strategies = {"none+lru"};
  std::size_t hi = run_compare(u).unlimited.peak_bytes;
  std::string strategy = "none+lru";
  // From the budget asked (it failed): fitting need not be monotone at the edge (a policy's
  // choices shift with the budget), and the answer must not undercut the budget it answers.
  std::size_t lo =
      std::min(asked.resolve(device_capacity(parse_device(o.device, o.sources.device)), hi), hi);
  while (hi - lo > std::max<std::size_t>(hi / 100, std::size_t{1} << 20)) {
    const std::size_t mid = lo + (hi - lo) / 2;
    if (std::optional<std::string> s = fitting(o, mid)) {
      hi = mid;
      strategy = *s;
    } else {
      lo = mid;
    }
  }
  fmt::print(
      "nothing fits the budget {}: every strategy ran out of memory. The smallest budget that "
      "fits, to within 1%, is about {} (with {})\n",
      o.budget, format_bytes(hi), strategy);
  return 3;
}

}  // namespace memento::cli
