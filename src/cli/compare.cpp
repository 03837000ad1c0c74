#include "cli/compare.hpp"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>

#include "cli/compare_table.hpp"
#include "cli/progress.hpp"
#include "cli/report_files.hpp"
#include "cli/staging.hpp"
#include "cli/workload.hpp"
#include "memento/backends.hpp"
#include "memento/config.hpp"
#include "memento/device_profile.hpp"
#include "memento/pinned_host_pool.hpp"
#include "memento/policy.hpp"
#include "memento/runtime.hpp"
#include "nn/plan_candidates.hpp"
#include "nn/train.hpp"
#include "policies/plan/plan.hpp"

namespace memento::cli {
namespace {

namespace fs = std::filesystem;

std::string join(const std::vector<std::string>& items, const char* sep = ", ") {
  std::string out;
  for (const std::string& s : items) out += (out.empty() ? "" : sep) + s;
  return out;
}

template <typename T>
bool contains(const std::vector<T>& items, const T& s) {
  return std::find(items.begin(), items.end(), s) != items.end();
}

// Items of a list option: each may itself be comma-separated; blanks are trimmed.
std::vector<std::string> split_items(const std::vector<std::string>& items) {
  std::vector<std::string> out;
  for (const std::string& item : items) {
    std::size_t begin = 0;
    while (begin <= item.size()) {
      std::size_t end = std::min(item.find(',', begin), item.size());
      std::string s = item.substr(begin, end - begin);
      s.erase(0, s.find_first_not_of(" \t"));
      s.erase(s.find_last_not_of(" \t") + 1);
      if (!s.empty()) out.push_back(s);
      begin = end + 1;
    }
  }
  return out;
}

// compare's budgets: a bare percentage is of the unlimited peak (60%device: of the device).
std::vector<BudgetSpec> parse_budgets(const std::vector<std::string>& items,
                                      const std::string& source) {
  std::vector<BudgetSpec> out;
  for (const std::string& s : split_items(items))
    out.push_back(parse_budget(s, source, {.bare_percent = BudgetBase::peak}));
  MEMENTO_EXPECTS(!out.empty(), fmt::format("{}: no budget given", source), ConfigError);
  return out;
}

struct Setup {
  DeviceSpec device;
  ModelSpec model;
  std::size_t host_budget = 0;
  int steps = 3;
  std::uint64_t seed = 0;
  float lr = 0;
  // Parameters, their fp32 gradients and AdamW's fp32 m and v: never evicted, all live at
  // the update, so no budget below this fits (known after the unlimited run).
  std::size_t persistent_bytes = 0;
};

// What only a run can tell: the device and the model's size.
struct RunFacts {
  std::string device_name;
  std::string rates;  // describe_rates
  std::size_t capacity = 0;
  bool virtual_clock = false;
  std::size_t parameters = 0;
  StatedRates stated;  // what the backend stated to the cost model (0: none)
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// How far an out-of-memory run missed its budget at the failing request: the allocator's
// reserved bytes plus the request, less the budget (what a larger budget would have had to
// hold at that moment; a lower bound on the real shortfall). Unknown when the error has no
// figures (thrashing) or when the request failed within the reserved bytes.
std::optional<std::size_t> oom_shortfall(const OutOfMemory& e) {
  const OomFigures* figures = e.figures();
  if (figures == nullptr || figures->shortfall() == 0) return std::nullopt;
  return figures->shortfall();
}

// One run on a fresh backend, allocator, runtime, tape and model. budget 0: none (the
// device's capacity). An OutOfMemory is the run's outcome, not an error.
// The reference run (`facts` given) on sim models the same device without a memory limit,
// so a model larger than the device still gets a baseline that never evicts; elsewhere the
// device is what it is.
std::unique_ptr<Backend> backend_for(const DeviceSpec& device, bool unbounded) {
  if (!unbounded || device.kind != BackendKind::sim) return make_backend(device);
  DeviceProfile p = find_device_profile(device.profile);
  p.capacity = std::max(p.capacity, std::size_t{1} << 50);
  return make_sim_backend(p);
}

RunResult run_one(const Setup& setup, const Strategy& strategy, std::size_t budget,
                  const std::string& trace_path, RunFacts* facts = nullptr) {
  auto backend = backend_for(setup.device, facts != nullptr);
  CachingAllocator alloc(*backend, AllocatorOptions{budget});
  PinnedHostPool pool(*backend, setup.host_budget);
  RuntimeOptions ropt;
  ropt.trace_file = trace_path;  // empty: no trace (and not MEMENTO_TRACE either)
  ropt.plan_from_observation = strategy.observe;
  Runtime rt(*backend, alloc, &pool, make_policy(strategy.policy), ropt);
  std::unique_ptr<nn::Plan> plan;  // outlives the tape's use of it
  nn::Tape tape(rt, alloc, *backend);

  RunResult r;
  r.strategy = strategy;
  r.budget_bytes = budget;
  std::vector<nn::StepReport> steps;
  try {
    std::unique_ptr<nn::Model> model = build_model(setup.model, tape, setup.seed);
    if (facts) {
      const DeviceInfo& i = backend->info();
      *facts = {
          i.name,
          describe_rates(i),
          device_capacity(setup.device),
          i.virtual_clock,
          model->parameter_count(),
          {i.matrix_flops, i.vector_flops, i.memory_bandwidth, i.h2d_bandwidth, i.d2h_bandwidth}};
    }
    plan::ChainShape shape = model->chain_shape();
    shape.fixed_bytes += trainer_bytes(setup.model, model->parameter_count());
    const DeviceInfo& info = backend->info();
    const plan::PlanTarget target{
        .budget_bytes = static_cast<double>(budget),
        .matrix_flops = info.matrix_flops,
        .vector_flops = info.vector_flops,
        .memory_bandwidth = info.memory_bandwidth,
        .link_bytes_per_s = std::min(info.h2d_bandwidth, info.d2h_bandwidth),
        .host_bytes = static_cast<double>(setup.host_budget)};
    plan = plan::make_plan(strategy.plan, shape, target);
    r.plan_description = plan->describe();
    if (strategy.observe) rt.set_plan_candidates(nn::plan_candidates(shape, target));
    tape.set_plan(plan.get());
    nn::Trainer trainer(tape, *model, setup.model.adamw(setup.lr));
    for (int i = 0; i < setup.steps; ++i) steps.push_back(trainer.step());
    rt.flush_trace();
    if (std::optional<StepPlanSummary> made = rt.plan()) {
      r.plan_description = made->describe();
      r.plan_cpu_s = made->plan_cpu_seconds;
      r.step_plan = *made;
    }
  } catch (const OutOfMemory& e) {
    r.error = e.what();
    r.miss_bytes = oom_shortfall(e);
    if (setup.persistent_bytes > budget)
      r.miss_bytes = std::max(r.miss_bytes.value_or(0), setup.persistent_bytes - budget);
  }
  tape.set_plan(nullptr);
  r.fits = r.error.empty();
  r.allocator_peak_bytes = alloc.stats().reserved.peak;
  r.peak_bytes = r.fits ? 0 : r.allocator_peak_bytes;  // an OOM: the failing step's
  std::vector<double> seconds;
  for (std::size_t i = 0; i < steps.size(); ++i) {
    r.peak_bytes = std::max(r.peak_bytes, steps[i].stats.peak_reserved);
    if (i > 0 || steps.size() == 1) seconds.push_back(steps[i].stats.seconds);
  }
  if (r.fits) {
    r.step_time_s = median(seconds);
    const nn::StepReport& last = steps.back();
    const RuntimeCounters& c = last.stats.counters;
    r.recompute_flops = c.recompute_flops;
    r.bytes_offloaded = c.bytes_offloaded;
    r.bytes_prefetched = c.bytes_prefetched;
    r.stall_s = last.stats.stalled_seconds;
    if (!std::isnan(last.loss)) r.loss = last.loss;
    r.evictions = c.discards + c.offloads;
    r.recomputes = c.recomputes;
  }
  return r;
}

}  // namespace

std::vector<Strategy> parse_strategies(const std::vector<std::string>& items,
                                       const std::string& policy) {
  const std::vector<std::string> planners = plan::plan_names();
  const std::vector<std::string> policies = policy_names();
  const auto unknown = [&](const std::string& what) {
    MEMENTO_FAIL(
        ConfigError,
        fmt::format("unknown strategy \"{}\"; accepted: budget (observe a step, then plan), a "
                    "planner ({}), a policy ({}), PLANNER+POLICY, or all",
                    what, join(planners), join(policies)));
  };
  std::vector<Strategy> out;
  const auto add = [&](Strategy s) {
    if (std::none_of(out.begin(), out.end(), [&](const Strategy& o) { return o.name == s.name; }))
      out.push_back(std::move(s));
  };
  for (const std::string& item : split_items(items)) {
    if (item == "budget") {
      add({"budget", "none", policy, true});
    } else if (item == "all") {
      add({"budget", "none", policy, true});
      for (const std::string& p : planners) add({p, p, policy});
      for (const std::string& p : policies) add({p, "none", p});
    } else if (const std::size_t plus = item.find('+'); plus != std::string::npos) {
      const std::string plan = item.substr(0, plus), pol = item.substr(plus + 1);
      if (!contains(planners, plan) || !contains(policies, pol)) unknown(item);
      add({item, plan, pol});
    } else if (contains(planners, item)) {
      add({item, item, policy});
    } else if (contains(policies, item)) {
      add({item, "none", item});
    } else {
      unknown(item);
    }
  }
  MEMENTO_EXPECTS(!out.empty(), "--strategies: no strategy given", ConfigError);
  return out;
}

namespace {

// The options checked and resolved: what every run needs, all known before the first one.
struct Validated {
  Setup setup;
  std::string policy;  // what a bare planner hands the remaining pressure to
  std::vector<Strategy> strategies;
  std::vector<BudgetSpec> budgets;
  std::unique_ptr<Staging> staging;  // the output directory (--out)
};

// Step 1: everything the user gave is checked before the first run.
Validated validate(const CompareOptions& o) {
  Validated v;
  Setup& setup = v.setup;
  setup.device = parse_device(o.device, o.sources.device);
  v.policy = parse_policy(o.policy, o.sources.policy);
  v.strategies = parse_strategies(o.strategies, v.policy);
  v.budgets = parse_budgets(o.budgets, o.sources.budget);
  // The smallest budget known before the unlimited run (bytes, shares of the device), else
  // the device's capacity: --optimizer auto chooses by it.
  std::size_t smallest = 0;
  std::optional<std::size_t> capacity;
  const auto device_bytes = [&] {
    return *(capacity ? capacity : capacity.emplace(device_capacity(setup.device)));
  };
  for (const BudgetSpec& b : v.budgets) {
    if (b.is_share() && b.base == BudgetBase::peak) continue;
    const std::size_t bytes = b.is_share() ? b.resolve(device_bytes()) : b.bytes;
    if (smallest == 0 || bytes < smallest) smallest = bytes;
  }
  if (smallest == 0 && o.workload.optimizer == "auto") smallest = device_bytes();
  setup.model = parse_model(o.workload, setup.device, smallest);
  MEMENTO_EXPECTS(o.steps >= 1, "--steps must be at least 1", ConfigError);
  setup.host_budget =
      o.host_budget ? parse_bytes(*o.host_budget, o.sources.host_budget) : std::size_t{16} << 30;
  setup.steps = o.steps;
  setup.seed = o.seed;
  setup.lr = o.lr;
  if (o.out) v.staging = std::make_unique<Staging>(*o.out);
  return v;
}

// Step 2: the unlimited reference, then each strategy at each budget. Learns the device and
// the model's size (`facts`), and what no budget can go below (setup.persistent_bytes).
CompareResult run(Validated& v, const CompareOptions& o, RunFacts& facts) {
  Setup& setup = v.setup;
  const std::vector<Strategy>& strategies = v.strategies;
  const std::vector<BudgetSpec>& budgets = v.budgets;
  const Staging* staging = v.staging.get();
  const auto trace_path = [&](const std::string& name) {
    return staging ? fmt::format("{}/trace-{}.json", staging->dir(), file_slug(name))
                   : std::string();
  };

  std::optional<Progress> progress;
  if (o.print) progress.emplace(1 + strategies.size() * budgets.size());
  const auto begin = [&](const std::string& name) {
    if (progress) progress->begin(name);
  };
  const auto end = [&](const RunResult& r) {
    if (!progress) return;
    progress->end(r.fits ? fmt::format("fits, peak {}, step {}", format_bytes(r.peak_bytes),
                                       format_seconds(r.step_time_s.value_or(0)))
                         : fits_text(r));
  };

  // The reference: no budget, no plan, the plainest policy.
  CompareResult result;
  begin("unlimited");
  result.unlimited =
      run_one(setup, {"unlimited", "none", "lru"}, 0, trace_path("unlimited"), &facts);
  RunResult& u = result.unlimited;
  u.budget_text = "unlimited";
  if (staging) u.trace_file = "trace-unlimited.json";
  end(u);
  MEMENTO_EXPECTS(u.fits,
                  fmt::format("{} does not fit {} even without a budget: {}", o.workload.model,
                              facts.device_name.empty() ? o.device : facts.device_name, u.error),
                  ConfigError);
  setup.persistent_bytes = persistent_bytes(setup.model, facts.parameters);
  u.budget_fraction = 1;
  u.slowdown = 1;
  u.overhead = 0;

  // Every budget is checked before the first budgeted run.
  std::vector<std::size_t> budget_bytes;
  for (const BudgetSpec& b : budgets)
    budget_bytes.push_back(b.resolve(facts.capacity, u.peak_bytes));
  for (const Strategy& s : strategies) {
    for (std::size_t bi = 0; bi < budgets.size(); ++bi) {
      const BudgetSpec& b = budgets[bi];
      const std::size_t bytes = budget_bytes[bi];
      const std::string name = fmt::format("{} @ {}", s.name, b.text);
      begin(name);
      RunResult r = run_one(setup, s, bytes, trace_path(s.name + "-" + b.text));
      r.budget_text = b.text;
      r.budget_fraction = static_cast<double>(bytes) / static_cast<double>(u.peak_bytes);
      if (staging) r.trace_file = fmt::format("trace-{}.json", file_slug(s.name + "-" + b.text));
      if (r.step_time_s && u.step_time_s && *u.step_time_s > 0) {
        r.slowdown = *r.step_time_s / *u.step_time_s;
        r.overhead = *r.slowdown - 1;
      }
      end(r);
      result.runs.push_back(std::move(r));
    }
  }
  if (progress) progress->finish();
  return result;
}

// Step 3: the assumptions and the table; the output directory's files once every run
// completed. NothingFits when no run fit its budget.
void describe(const Validated& v, const CompareOptions& o, const RunFacts& facts,
              CompareResult& result) {
  const Setup& setup = v.setup;
  const std::string& policy = v.policy;
  const std::vector<BudgetSpec>& budgets = v.budgets;
  const RunResult& u = result.unlimited;
  const std::string dtype = setup.model.dtype() == nn::DType::bf16 ? "bf16" : "fp32";
  const bool host_optimizer = setup.model.optimizer == nn::OptimizerPlacement::host;
  const auto& g = setup.model.gpt;
  const auto& m = setup.model.mlp_config;
  const bool sim = facts.virtual_clock;
  auto& a = result.assumptions;
  a["model"] = o.workload.model;
  if (setup.model.mlp) {
    a["layers"] = m.layers, a["width"] = m.width, a["classes"] = m.classes, a["batch"] = m.batch;
  } else {
    a["layers"] = g.layers, a["heads"] = g.heads, a["width"] = g.channels, a["seq"] = g.seq;
    a["vocab"] = g.vocab, a["batch"] = g.batch;
  }
  a["parameters"] = facts.parameters;
  a["dtype"] = dtype;
  a["device"] = facts.device_name;
  a["device_capacity_bytes"] = facts.capacity;
  a["rates"] = facts.rates;
  a["stated_rates"] = {{"matrix_flops", facts.stated.matrix_flops},
                       {"vector_flops", facts.stated.vector_flops},
                       {"memory_bandwidth", facts.stated.memory_bandwidth},
                       {"h2d_bandwidth", facts.stated.h2d_bandwidth},
                       {"d2h_bandwidth", facts.stated.d2h_bandwidth}};
  a["clock"] = sim ? "virtual (the sim backend's model)" : "wall";
  a["optimizer_state"] = host_optimizer ? "host" : "device";
  if (!setup.model.mlp) {
    a["head_chunks"] = nn::gpt2_head_chunks(g);
    a["attention"] = nn::to_string(g.attention);
  }
  a["steps"] = o.steps;
  a["policy_for_planners"] = policy;
  a["host_budget_bytes"] = setup.host_budget;
  a["seed"] = o.seed;
  a["budget_percentages_of"] = "unlimited peak";
  // The same, as printed before the table.
  // The runs go strategy by strategy, each over every budget: the first ones have their bytes.
  std::vector<std::string> budget_texts;
  for (std::size_t i = 0; i < budgets.size() && i < result.runs.size(); ++i)
    budget_texts.push_back(budgets[i].is_share()
                               ? fmt::format("{} ({}) = {}", budgets[i].text, budgets[i].describe(),
                                             format_bytes(result.runs[i].budget_bytes))
                               : budgets[i].text);
  result.summary = {
      {"model", setup.model.mlp
                    ? fmt::format("mlp: {} layers, width {}, {} classes, batch {}", m.layers,
                                  m.width, m.classes, m.batch)
                    : fmt::format("{}: {} layers, {} heads, width {}, seq {}, vocab {}, batch {}, "
                                  "{} attention, head (logits and loss) in {} chunk{} of rows",
                                  o.workload.model, g.layers, g.heads, g.channels, g.seq, g.vocab,
                                  g.batch, nn::to_string(g.attention), nn::gpt2_head_chunks(g),
                                  nn::gpt2_head_chunks(g) > 1 ? "s" : "")},
      {"parameters", fmt::format("{:.2f}M", static_cast<double>(facts.parameters) / 1e6)},
      {"dtype", dtype},
      {"device",
       fmt::format("{} (capacity {}; {})", facts.device_name, format_bytes(facts.capacity),
                   sim ? "times are the simulator's prediction, no data is computed"
                       : "times are wall clock")},
      {"rates", facts.rates},
      {"optimizer",
       describe_optimizer(setup.model, facts.parameters) +
           (setup.model.optimizer_reason.empty() ? std::string()
                                                 : "; " + setup.model.optimizer_reason)},
      {"host memory",
       fmt::format("{} of pinned memory for offloads", format_bytes(setup.host_budget))},
      {"steps", fmt::format("{} per run, same seed and data; step time: median of the steps after "
                            "the first; peak: max over steps",
                            o.steps)},
      {"strategies", fmt::format("a planner hands the remaining pressure to policy {}; a policy "
                                 "runs with plan none",
                                 policy)},
      {"budgets", join(budget_texts) +
                      " (a bare percentage is of the unlimited peak, N%device of the device)"},
      {"unlimited",
       fmt::format("peak {} reserved, step {} (no budget, plan none, policy lru{}){}",
                   format_bytes(u.peak_bytes), format_seconds(*u.step_time_s),
                   u.loss ? fmt::format(", loss {:.6f}", *u.loss) : "",
                   u.evictions > 0
                       ? fmt::format("; WARNING: it evicted {} times, the device is too small "
                                     "for a true reference, so overheads are understated",
                                     u.evictions)
                   : sim && u.peak_bytes > facts.capacity
                       ? "; more than the device holds: the sim runs the reference on the same "
                         "device without a memory limit"
                       : "")}};

  if (o.print) print_compare_report(result);
  const bool any_fits = std::any_of(result.runs.begin(), result.runs.end(),
                                    [](const RunResult& r) { return r.fits; });
  if (!any_fits) {
    std::size_t largest = 0;
    for (const RunResult& r : result.runs) largest = std::max(largest, r.budget_bytes);
    MEMENTO_FAIL(
        NothingFits,
        fmt::format("no strategy fits any budget: every run ran out of memory, even at the "
                    "largest budget of {} ({:.0f}% of the unlimited peak of {}; what is never "
                    "evicted (the parameters{}) takes {}); give a larger --budget",
                    format_bytes(largest),
                    100.0 * static_cast<double>(largest) / static_cast<double>(u.peak_bytes),
                    format_bytes(u.peak_bytes),
                    host_optimizer ? "" : ", their gradients and AdamW's state",
                    format_bytes(setup.persistent_bytes)));
  }
  if (v.staging) {
    write_report(result, v.staging->dir());
    v.staging->commit();
    if (o.print) fmt::print("wrote results.json, results.csv, traces and charts to {}\n", *o.out);
  }
}

}  // namespace

CompareResult run_compare(const CompareOptions& o) {
  Validated v = validate(o);
  RunFacts facts;
  CompareResult result = run(v, o, facts);
  describe(v, o, facts, result);
  return result;
}

int run_default_compare() {
  CompareOptions host;  // gpt2-tiny on the host backend: real steps, real losses
  run_compare(host);
  fmt::print("\n");
  CompareOptions sim;  // a real size on the simulator: predicted memory and time
  sim.workload.model = "gpt2-124m";
  sim.workload.batch = 8;
  sim.device = "sim:a100-40gb";
  run_compare(sim);
  return 0;
}

}  // namespace memento::cli
