// The soak (issue 17 item 3): many steps of gpt2-tiny on the host backend under a budget
// that a second thread changes between steps, with `dtr` (the dynamic policy alone) and
// `auto` planned from the first step (what `memento train` runs with MEMENTO_BUDGET and
// MEMENTO_POLICY=auto). The budgets are shares of the unlimited peak, alternating at random
// (seeded) between MEMENTO_SOAK_HI and MEMENTO_SOAK_LO thousandths (default 500 and 400: the
// issue's 400 and 300 do not fit gpt2-tiny, see CMakeLists.txt). Checks: every loss
// bit-identical to the unlimited run's; no step allocating beyond the budget in force during
// it, nor reserving beyond it or beyond what it began with; no leak (the allocated bytes
// after each step are step 1's exactly, no pinned host bytes left, the reserved bytes do not
// trend up at either budget); no deadlock (a watchdog aborts naming the run, the step and
// the phase). MEMENTO_SOAK_STEPS: steps per run (default 1000). The summary it prints per run
// is for docs/RESULTS.md.
//
// Threads: CachingAllocator::set_budget (and budget()) are called on a thread other than the
// one that runs the steps, between steps (a handshake orders each call after one step's
// end_step and before the next begin_step), so the change applies to a whole step and the
// run is reproducible. The allocator's state is under its lock; the runtime reads the budget
// through budget(). The unlimited run, dtr and auto run at once on three threads (their own
// backend, allocator and runtime each; MEMENTO_SOAK_PARALLEL=0: one after another).
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "memento/backends.hpp"
#include "memento/runtime.hpp"
#include "nn/models/gpt2.hpp"
#include "nn/nn_rig.hpp"
#include "nn/plan_candidates.hpp"
#include "nn/train.hpp"
#include "soak/soak_threads.hpp"

namespace memento::nn {
namespace {

using soak::BudgetChanger;
using soak::Clock;
using soak::env_int;
using soak::Watchdog;
using testing::kMiB;
using testing::Rig;

struct StepRecord {
  double loss = 0;
  std::size_t budget = 0;          // in force during the step; 0: none
  std::size_t reserved_start = 0;  // allocator reserved bytes before the step
  StepStats stats;
  std::size_t reserved_end = 0;  // allocator figures after end_step
  std::size_t allocated_end = 0;
  std::size_t segments_end = 0;
  std::size_t host_in_use_end = 0;
  double wall_ms = 0;
};

struct SoakRun {
  std::string name;
  std::vector<StepRecord> steps;
  double wall_s = 0;
  std::size_t budget_changes = 0;
};

void offer_static_plans(Rig& s) {
  // As `memento train` does: the static planners' plans for the starting budget.
  plan::ChainShape shape = s.model->chain_shape();
  shape.fixed_bytes += 12.0 * static_cast<double>(s.model->parameter_count());
  const DeviceInfo& info = s.backend->info();
  s.rt.set_plan_candidates(
      plan_candidates(shape, {.budget_bytes = static_cast<double>(s.alloc.budget()),
                              .matrix_flops = info.matrix_flops,
                              .vector_flops = info.vector_flops,
                              .memory_bandwidth = info.memory_bandwidth,
                              .link_bytes_per_s = std::min(info.h2d_bandwidth, info.d2h_bandwidth),
                              .host_bytes = 256.0 * kMiB}));
}

Gpt2Config soak_model() {
  Gpt2Config c = gpt2_preset("gpt2-tiny");
  c.batch = env_int("MEMENTO_SOAK_BATCH", static_cast<int>(c.batch));
  if (const char* a = std::getenv("MEMENTO_SOAK_ATTENTION")) c.attention = parse_attention(a);
  return c;
}

/// `budgets`: the budget of each step (all 0: unlimited, no changer thread).
SoakRun run_soak(const std::string& name, const std::string& policy, RuntimeOptions options,
                 const std::vector<std::size_t>& budgets, Watchdog& watchdog) {
  const bool observe = options.plan_from_observation;
  Rig s(testing::host_backend(), budgets.front(), policy, std::move(options));
  s.model = make_gpt2(soak_model(), s.tape, 7);
  if (observe) offer_static_plans(s);
  Trainer t(s.tape, *s.model);
  std::optional<BudgetChanger> changer;
  if (budgets.front() != 0) changer.emplace(s.alloc);
  SoakRun run;
  run.name = name;
  run.steps.reserve(budgets.size());
  const auto start = Clock::now();
  for (std::size_t i = 0; i < budgets.size(); ++i) {
    const int step = static_cast<int>(i);
    if (i > 0 && budgets[i] != budgets[i - 1]) {
      watchdog.enter(name, step, "set_budget (other thread)");
      changer->set(budgets[i]);
    }
    watchdog.enter(name, step, "step");
    StepRecord r;
    r.reserved_start = s.alloc.stats().reserved.current;
    StepReport rep;
    try {
      rep = t.step();
    } catch (const std::exception& e) {
      watchdog.leave(name);
      throw std::runtime_error(fmt::format(
          "{} step {} (budget {} bytes, {} reserved at its start, previous step {}): {}", name,
          step, budgets[i], r.reserved_start,
          i == 0 ? std::string("-") : std::string(to_string(run.steps.back().stats.phase)),
          e.what()));
    }
    watchdog.enter(name, step, "after the step");
    r.loss = rep.loss;
    r.budget = budgets[i];
    r.stats = rep.stats;
    r.wall_ms = rep.wall_seconds * 1e3;
    const AllocatorStats a = s.alloc.stats();
    r.reserved_end = a.reserved.current;
    r.allocated_end = a.allocated.current;
    r.segments_end = a.segments.current;
    r.host_in_use_end = s.pool.in_use_bytes();
    run.steps.push_back(r);
  }
  run.wall_s = std::chrono::duration<double>(Clock::now() - start).count();
  watchdog.leave(name);
  if (changer) {
    run.budget_changes = changer->changes();
    EXPECT_NE(changer->id(), std::this_thread::get_id());
    EXPECT_TRUE(changer->all_on_this_thread());
  }
  return run;
}

/// Least-squares slope of the end-of-step reserved bytes over `steps` (bytes per step).
double slope(const SoakRun& run, const std::vector<std::size_t>& steps) {
  if (steps.size() < 2) return 0;
  double mx = 0, my = 0;
  for (std::size_t i : steps) {
    mx += static_cast<double>(i);
    my += static_cast<double>(run.steps[i].reserved_end);
  }
  mx /= static_cast<double>(steps.size());
  my /= static_cast<double>(steps.size());
  double sxy = 0, sxx = 0;
  for (std::size_t i : steps) {
    const double dx = static_cast<double>(i) - mx;
    sxy += dx * (static_cast<double>(run.steps[i].reserved_end) - my);
    sxx += dx * dx;
  }
  return sxx > 0 ? sxy / sxx : 0;
}

std::string mib(std::size_t b) { return fmt::format("{:.2f} MiB", static_cast<double>(b) / kMiB); }

/// The leak checks and the summary (printed for docs/RESULTS.md).
void check_and_report(const SoakRun& run, const std::vector<double>& want) {
  const std::size_t n = run.steps.size();
  ASSERT_EQ(n, want.size());

  // Losses: bit-identical to the unlimited run's, every step.
  std::size_t loss_mismatches = 0;
  for (std::size_t i = 0; i < n; ++i)
    if (run.steps[i].loss != want[i] && ++loss_mismatches <= 5)
      ADD_FAILURE() << run.name << " step " << i << ": loss "
                    << fmt::format("{:.17g}", run.steps[i].loss) << ", unlimited "
                    << fmt::format("{:.17g}", want[i]);
  EXPECT_EQ(loss_mismatches, 0u) << run.name << ": steps whose loss differs";

  // No step over the budget in force during it: its allocated bytes never, and its reserved
  // bytes never beyond the budget or, where a lower budget found segments that hold live
  // blocks (the parameters, AdamW's state) and so cannot be given back, beyond what was
  // reserved when it began.
  double worst_share = 0;
  std::size_t began_over = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const StepRecord& r = run.steps[i];
    if (r.budget == 0) continue;
    worst_share = std::max(
        worst_share, static_cast<double>(r.stats.peak_allocated) / static_cast<double>(r.budget));
    began_over += r.reserved_start > r.budget ? 1 : 0;
    EXPECT_LE(r.stats.peak_allocated, r.budget) << run.name << " step " << i << ": peak allocated";
    EXPECT_LE(r.stats.peak_reserved, std::max(r.budget, r.reserved_start))
        << run.name << " step " << i << ": peak reserved (" << r.reserved_start
        << " reserved at its start)";
  }

  // No leak. What the caller holds between steps (parameters, gradients, AdamW's m and v,
  // made at the first update) is the same after every step: the allocated bytes at the end
  // of each step after the first are exactly step 1's (one leaked 512-byte block shows),
  // and nothing is left in the host pool.
  for (std::size_t i = 1; i < n; ++i) {
    if (run.steps[i].allocated_end != run.steps[1].allocated_end) {
      ADD_FAILURE() << run.name << " step " << i << ": " << run.steps[i].allocated_end
                    << " bytes allocated after the step, " << run.steps[1].allocated_end
                    << " after step 1";
      break;
    }
  }
  for (std::size_t i = 0; i < n; ++i) {
    if (run.steps[i].host_in_use_end != 0) {
      ADD_FAILURE() << run.name << " step " << i << ": " << run.steps[i].host_in_use_end
                    << " pinned host bytes still in use after the step";
      break;
    }
  }
  // Reserved bytes, at each budget on its own (a lower budget gives cached segments back,
  // so steps at different budgets are not comparable): the most after the last tenth's
  // steps is at most the most after the second tenth's, and the least-squares slope over
  // every step past the first tenth adds up, over the whole run, to less than 1 MiB: half a
  // small segment, a twentieth of a large one, so a trend of even one segment over the run
  // fails.
  std::vector<std::size_t> levels;
  for (const StepRecord& r : run.steps)
    if (std::find(levels.begin(), levels.end(), r.budget) == levels.end())
      levels.push_back(r.budget);
  std::sort(levels.begin(), levels.end());
  const std::size_t tenth = std::max<std::size_t>(n / 10, 1);
  std::string slopes;
  for (std::size_t level : levels) {
    std::vector<std::size_t> second, last, fit;
    for (std::size_t i = tenth; i < n; ++i) {
      if (run.steps[i].budget != level) continue;
      fit.push_back(i);
      if (i < 2 * tenth) second.push_back(i);
      if (i >= n - tenth) last.push_back(i);
    }
    const auto most = [&](const std::vector<std::size_t>& v) {
      std::size_t m = 0;
      for (std::size_t i : v) m = std::max(m, run.steps[i].reserved_end);
      return m;
    };
    if (!second.empty() && !last.empty()) {
      EXPECT_LE(most(last), most(second))
          << run.name << " at budget " << mib(level) << ": reserved bytes grew";
    }
    const double b = slope(run, fit);
    EXPECT_LT(b * static_cast<double>(n), 1.0 * kMiB)
        << run.name << " at budget " << mib(level) << ": reserved bytes trend up by " << b
        << " bytes per step";
    slopes += fmt::format("{}{:+.1f} B/step at {}", slopes.empty() ? "" : ", ", b,
                          level == 0 ? "no budget" : mib(level));
  }

  // Summary.
  std::vector<double> ms;
  RuntimeCounters total;
  std::size_t observed = 0, planned = 0, replans = 0, prefetches = 0;
  std::size_t peak_lo = 0, peak_hi = 0;
  for (const StepRecord& r : run.steps) {
    ms.push_back(r.wall_ms);
    const RuntimeCounters& c = r.stats.counters;
    total.discards += c.discards;
    total.offloads += c.offloads;
    total.offload_fallbacks += c.offload_fallbacks;
    total.early_offloads += c.early_offloads;
    total.bytes_offloaded += c.bytes_offloaded;
    total.recomputes += c.recomputes;
    prefetches += r.stats.prefetches_ahead;
    observed += r.stats.phase == StepPhase::observed ? 1 : 0;
    planned += r.stats.phase == StepPhase::planned ? 1 : 0;
    replans += r.stats.replanned ? 1 : 0;
    (r.budget == levels.front() ? peak_lo : peak_hi) =
        std::max(r.budget == levels.front() ? peak_lo : peak_hi, r.stats.peak_reserved);
  }
  std::nth_element(ms.begin(), ms.begin() + static_cast<std::ptrdiff_t>(n / 2), ms.end());
  const StepRecord& first = run.steps.front();
  const StepRecord& mid = run.steps[n / 2 - (n >= 2 ? 1 : 0)];
  const StepRecord& end = run.steps.back();
  std::string summary = fmt::format(
      "soak {}: {} steps in {:.1f} s, median step {:.2f} ms; {} budget changes on another "
      "thread\n"
      "  reserved after step 1 / {} / {}: {} / {} / {}; segments {} / {} / {}; allocated "
      "after each step {}\n"
      "  reserved trend: {}\n",
      run.name, n, run.wall_s, ms[n / 2], run.budget_changes, n / 2, n, mib(first.reserved_end),
      mib(mid.reserved_end), mib(end.reserved_end), first.segments_end, mid.segments_end,
      end.segments_end, mib(run.steps[std::min<std::size_t>(1, n - 1)].allocated_end), slopes);
  if (levels.front() != 0) {
    summary += fmt::format(
        "  budgets {} .. {}: peak reserved {} at the lower, {} at the higher; most allocated "
        "{:.1f}% of the step's budget; {} steps began with more reserved than their budget\n",
        mib(levels.front()), mib(levels.back()), mib(peak_lo), mib(peak_hi), 100 * worst_share,
        began_over);
    summary += fmt::format(
        "  evictions: {} discards, {} offloads ({} early, {} fallbacks, {} offloaded), {} "
        "recomputes, {} prefetches ahead; phases: {} observed, {} planned, {} replans\n",
        total.discards, total.offloads, total.early_offloads, total.offload_fallbacks,
        mib(total.bytes_offloaded), total.recomputes, prefetches, observed, planned, replans);
  }
  std::fputs(summary.c_str(), stdout);
  std::fflush(stdout);
}

TEST(Soak, Gpt2TinyUnderAChangingBudgetFromAnotherThread) {
  const int steps = env_int("MEMENTO_SOAK_STEPS", 1000);
  ASSERT_GE(steps, 20) << "MEMENTO_SOAK_STEPS: at least 20 steps (the leak checks use tenths)";
  Watchdog watchdog(env_int("MEMENTO_SOAK_WATCHDOG_S", 60));
  const auto n = static_cast<std::size_t>(steps);

  // The peak the budgets are shares of, from the first steps of an unlimited run (the
  // full run's peak is checked to be the same below: were it higher, the budgets would be
  // smaller shares of it, never larger).
  const std::size_t prefix = std::min<std::size_t>(n, 12);
  std::size_t peak = 0;
  for (const StepRecord& r :
       run_soak("unlimited prefix", "lru", {}, std::vector<std::size_t>(prefix, 0), watchdog).steps)
    peak = std::max(peak, r.stats.peak_reserved);

  // The budgets, in thousandths of that peak (MEMENTO_SOAK_HI, MEMENTO_SOAK_LO; the issue
  // asks for 400 and 300, which gpt2-tiny does not fit: see tests/soak/CMakeLists.txt): the
  // first step at the higher, then at each step boundary a seeded coin chooses (about one
  // change every other step, with runs at one budget of a few steps).
  const std::size_t hi = peak * static_cast<std::size_t>(env_int("MEMENTO_SOAK_HI", 500)) / 1000;
  const std::size_t lo = peak * static_cast<std::size_t>(env_int("MEMENTO_SOAK_LO", 400)) / 1000;
  std::vector<std::size_t> budgets(n, hi);
  std::mt19937 rng(17);
  for (std::size_t i = 1; i < n; ++i) budgets[i] = (rng() & 1) != 0 ? hi : lo;

  struct Job {
    std::string name, policy;
    RuntimeOptions options;
    std::vector<std::size_t> budgets;
    SoakRun run;
    std::exception_ptr error;
  };
  std::vector<Job> jobs;
  jobs.push_back({"unlimited", "lru", {}, std::vector<std::size_t>(n, 0), {}, nullptr});
  std::vector<std::pair<std::string, bool>> runs{{"dtr", false}, {"auto", true}};
  if (const char* only = std::getenv("MEMENTO_SOAK_POLICIES")) {  // e.g. dtr:plan,auto:none
    runs.clear();
    std::string list = only;
    for (std::size_t at = 0; at < list.size();) {
      std::size_t comma = list.find(',', at);
      if (comma == std::string::npos) comma = list.size();
      const std::string item = list.substr(at, comma - at);
      const std::size_t colon = item.find(':');
      runs.emplace_back(item.substr(0, colon),
                        colon != std::string::npos && item.substr(colon + 1) == "plan");
      at = comma + 1;
    }
  }
  for (const auto& [policy, observe] : runs)
    jobs.push_back({observe ? policy + " (planned from the first step)" : policy,
                    policy,
                    {.plan_from_observation = observe},
                    budgets,
                    {},
                    nullptr});

  // The runs are independent (a backend, an allocator and a runtime each) and deterministic
  // whatever the threads: by default they run at once, one thread each (MEMENTO_SOAK_PARALLEL=0:
  // one after another).
  const auto run_job = [&watchdog](Job& j) {
    try {
      j.run = run_soak(j.name, j.policy, j.options, j.budgets, watchdog);
    } catch (...) {
      j.error = std::current_exception();
    }
  };
  const auto start = Clock::now();
  const char* parallel = std::getenv("MEMENTO_SOAK_PARALLEL");
  if (parallel != nullptr && std::string(parallel) == "0") {
    for (Job& j : jobs) run_job(j);
  } else {
    std::vector<std::thread> threads;
    for (Job& j : jobs) threads.emplace_back(run_job, std::ref(j));
    for (std::thread& t : threads) t.join();
  }
  const double wall = std::chrono::duration<double>(Clock::now() - start).count();
  for (const Job& j : jobs)
    if (j.error) {
      try {
        std::rethrow_exception(j.error);
      } catch (const std::exception& e) {
        ADD_FAILURE() << e.what();
      }
    }
  if (jobs.front().error) return;
  std::vector<double> want;
  std::size_t full_peak = 0;
  for (const StepRecord& r : jobs.front().run.steps) {
    want.push_back(r.loss);
    full_peak = std::max(full_peak, r.stats.peak_reserved);
  }
  EXPECT_EQ(full_peak, peak) << "the unlimited peak over " << n << " steps differs from the first "
                             << prefix << " steps'";
  std::printf(
      "soak: %zu steps per run, %zu runs in %.1f s; unlimited peak reserved %s; budgets "
      "%s and %s\n",
      n, jobs.size(), wall, mib(peak).c_str(), mib(hi).c_str(), mib(lo).c_str());
  for (const Job& j : jobs)
    if (!j.error) check_and_report(j.run, want);
}

}  // namespace
}  // namespace memento::nn
