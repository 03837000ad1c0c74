// `memento compare` called as a function on gpt2-tiny (host): the unlimited reference, every
// run within its budget with the unlimited run's loss bit for bit, the files of --out, and
// bad input that fails before anything is written.
#include "cli/compare.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <string>

#include "cli/report_files.hpp"
#include "cli/temp_dir_test.hpp"
#include "memento/config.hpp"
#include "memento/error.hpp"
#include "memento/policy.hpp"
#include "policies/plan/plan.hpp"

namespace memento::cli {
namespace {

namespace fs = std::filesystem;

class CompareTest : public testing::TempDirTest {
 protected:
  CompareOptions options() const {
    CompareOptions o;
    o.workload.model = "gpt2-tiny";
    o.device = "host";
    o.budgets = {"70%", "45%"};
    o.strategies = {"none", "every-layer", "recompute", "offload", "sqrt+dtr"};
    o.steps = 2;
    o.out = dir_.string();
    o.print = false;
    return o;
  }
};

TEST_F(CompareTest, EveryRunFitsItsBudgetWithTheUnlimitedLoss) {
  const CompareOptions o = options();
  const CompareResult result = run_compare(o);
  const RunResult& u = result.unlimited;
  ASSERT_TRUE(u.fits);
  EXPECT_EQ(u.peak_bytes, u.allocator_peak_bytes);
  EXPECT_GT(u.peak_bytes, 0u);
  ASSERT_TRUE(u.loss.has_value());
  ASSERT_TRUE(u.step_time_s.has_value());
  ASSERT_EQ(result.runs.size(), 10u);
  for (const RunResult& r : result.runs) {
    SCOPED_TRACE(r.strategy.name + " @ " + r.budget_text);
    EXPECT_GT(r.budget_bytes, 0u);
    EXPECT_LE(r.peak_bytes, r.budget_bytes);
    EXPECT_NEAR(r.budget_fraction, r.budget_text == "70%" ? 0.70 : 0.45, 1e-6);
    if (!r.fits) continue;
    ASSERT_TRUE(r.loss.has_value());
    EXPECT_EQ(*r.loss, *u.loss);  // recomputation and copies back are bit-identical
    ASSERT_TRUE(r.slowdown && r.overhead);
    EXPECT_EQ(*r.overhead, *r.slowdown - 1);
    EXPECT_DOUBLE_EQ(*r.slowdown, *r.step_time_s / *u.step_time_s);
  }
  // The plain recompute and offload policies fit 45% of the peak on this model.
  for (const RunResult& r : result.runs) {
    if (r.strategy.name == "recompute" || r.strategy.name == "offload") {
      EXPECT_TRUE(r.fits) << r.strategy.name << " @ " << r.budget_text << ": " << r.error;
    }
  }
}

TEST_F(CompareTest, FusedAttentionFitsWithTheEagerLossInLessMemory) {
  CompareOptions o = options();
  o.budgets = {"60%"};
  o.strategies = {"every-layer", "mixed", "recompute"};
  o.out.reset();
  const CompareResult eager = run_compare(o);
  o.workload.attention = "fused";
  const CompareResult fused = run_compare(o);
  EXPECT_EQ(fused.assumptions["attention"], "fused");
  ASSERT_TRUE(fused.unlimited.loss && eager.unlimited.loss);
  EXPECT_EQ(*fused.unlimited.loss, *eager.unlimited.loss);  // the same kernels, the same bits
  EXPECT_LT(fused.unlimited.peak_bytes, eager.unlimited.peak_bytes);
  for (const RunResult& r : fused.runs) {
    SCOPED_TRACE(r.strategy.name);
    ASSERT_TRUE(r.fits) << r.error;
    EXPECT_LE(r.peak_bytes, r.budget_bytes);
    EXPECT_EQ(*r.loss, *fused.unlimited.loss);
  }
}

TEST_F(CompareTest, WritesResultsJsonCsvTracesAndCharts) {
  const CompareResult result = run_compare(options());
  std::ifstream f(dir_ / "results.json");
  ASSERT_TRUE(f.good());
  const nlohmann::json j = nlohmann::json::parse(f);
  for (const char* key : {"model", "layers", "heads", "width", "seq", "vocab", "batch", "dtype",
                          "device", "optimizer_state", "attention", "head_chunks"})
    EXPECT_TRUE(j["assumptions"].contains(key)) << key;
  EXPECT_EQ(j["assumptions"]["optimizer_state"], "device");
  // What the backend stated to the cost model (calibrate --fit reads it back).
  for (const char* key :
       {"matrix_flops", "vector_flops", "memory_bandwidth", "h2d_bandwidth", "d2h_bandwidth"})
    EXPECT_TRUE(j["assumptions"]["stated_rates"][key].is_number()) << key;
  EXPECT_EQ(j["unlimited"]["peak_bytes"].get<std::size_t>(), result.unlimited.peak_bytes);
  ASSERT_EQ(j["runs"].size(), result.runs.size());
  for (const auto& run : j["runs"]) {
    for (const char* key :
         {"strategy", "plan", "policy", "budget_bytes", "budget_fraction", "peak_bytes", "fits",
          "step_time_s", "slowdown", "overhead", "recompute_flops", "bytes_offloaded",
          "bytes_prefetched", "stall_s", "loss", "evictions", "recomputes"})
      EXPECT_TRUE(run.contains(key)) << key;
    EXPECT_LE(run["peak_bytes"].get<std::size_t>(), run["budget_bytes"].get<std::size_t>());
    if (run["fits"].get<bool>()) {
      EXPECT_EQ(run["overhead"].get<double>(), run["slowdown"].get<double>() - 1);
      EXPECT_EQ(run["loss"].get<double>(), j["unlimited"]["loss"].get<double>());
    }
    EXPECT_TRUE(fs::exists(dir_ / run["trace"].get<std::string>()));
  }
  EXPECT_EQ(j["runs"][0]["plan"], "none");
  EXPECT_EQ(j["runs"][0]["policy"], "auto");
  EXPECT_EQ(j["runs"].back()["plan"], "sqrt");
  EXPECT_EQ(j["runs"].back()["policy"], "dtr");

  // results.csv: a header and one line per run.
  std::ifstream csv(dir_ / "results.csv");
  std::string line;
  std::getline(csv, line);
  EXPECT_EQ(line.rfind("strategy,plan,policy,budget_bytes,budget_fraction,peak_bytes,fits,", 0),
            0u);
  std::size_t lines = 0;
  while (std::getline(csv, line)) ++lines;
  EXPECT_EQ(lines, result.runs.size());

  // Charts, and nothing staged left behind.
  for (const char* name : {"overhead.svg", "memory-none.svg", "memory-sqrt+dtr.svg"}) {
    std::ifstream svg(dir_ / name);
    const std::string text((std::istreambuf_iterator<char>(svg)), {});
    EXPECT_EQ(text.rfind("<svg", 0), 0u) << name;
    EXPECT_NE(text.find("<polyline"), std::string::npos) << name;
    EXPECT_NE(text.find("</svg>"), std::string::npos) << name;
  }
  for (const auto& entry : fs::directory_iterator(dir_))
    EXPECT_NE(entry.path().filename().string().front(), '.') << entry.path();

  // The memory curve of a run's last step stays within its budget.
  for (const RunResult& r : result.runs) {
    if (!r.fits) continue;
    const auto samples = read_last_step_memory((dir_ / r.trace_file).string());
    ASSERT_GT(samples.size(), 2u);
    for (const MemorySample& s : samples)
      EXPECT_LE(s.reserved, static_cast<double>(r.budget_bytes));
  }
}

// An out-of-memory run misses its budget by the allocator's reserved bytes plus the failing
// request, less the budget: the figures its message shows, to the message's rounding.
TEST_F(CompareTest, AnOutOfMemoryRunMissesByTheAllocatorsFigures) {
  CompareOptions o = options();
  o.budgets = {"30%"};  // above what is never evicted, below what these strategies need
  o.strategies = {"none", "recompute", "every-layer", "lru"};  // lru fits: no NothingFits
  o.steps = 1;
  o.out.reset();
  const CompareResult result = run_compare(o);
  const std::regex figures(
      R"(cannot allocate [^(]*\((\d+) bytes\).*budget of [^(]*\((\d+) bytes\).*reserved ([0-9.]+) (B|KiB|MiB|GiB) in)");
  int checked = 0;
  for (const RunResult& r : result.runs) {
    SCOPED_TRACE(r.strategy.name + ": " + r.error);
    if (r.fits) continue;
    std::smatch m;
    ASSERT_TRUE(std::regex_search(r.error, m, figures));
    const std::size_t request = std::stoull(m[1].str()), budget = std::stoull(m[2].str());
    EXPECT_EQ(budget, r.budget_bytes);
    ASSERT_TRUE(r.miss_bytes.has_value());
    // The reserved bytes the shortfall implies print as the message's reserved figure.
    const std::size_t reserved = *r.miss_bytes + budget - request;
    EXPECT_EQ(format_bytes(reserved) + " in", m[3].str() + " " + m[4].str() + " in");
    const std::string unit = m[4].str();
    const double scale = unit == "B"     ? 1
                         : unit == "KiB" ? 1024.0
                         : unit == "MiB" ? 1024.0 * 1024
                                         : 1024.0 * 1024 * 1024;
    EXPECT_NEAR(static_cast<double>(reserved), std::stod(m[3].str()) * scale, 0.005 * scale);
    ++checked;
  }
  EXPECT_GT(checked, 0) << "no run ran out of memory: the budget no longer tests the shortfall";
}

TEST_F(CompareTest, StrategyNames) {
  const auto all = parse_strategies({"all"}, "auto");
  EXPECT_EQ(all.size(), 1 + plan::plan_names().size() + policy_names().size());
  EXPECT_EQ(all.front().name, "budget");
  EXPECT_TRUE(all.front().observe);
  const auto budget = parse_strategies({"budget"}, "dtr");
  ASSERT_EQ(budget.size(), 1u);
  EXPECT_TRUE(budget[0].observe);
  EXPECT_EQ(budget[0].plan, "none");
  EXPECT_EQ(budget[0].policy, "dtr");
  const auto s = parse_strategies({"sqrt,dtr", "selective+offload"}, "recompute");
  ASSERT_EQ(s.size(), 3u);
  EXPECT_EQ(s[0].plan, "sqrt");
  EXPECT_EQ(s[0].policy, "recompute");
  EXPECT_EQ(s[1].plan, "none");
  EXPECT_EQ(s[1].policy, "dtr");
  EXPECT_EQ(s[2].plan, "selective");
  EXPECT_EQ(s[2].policy, "offload");
  EXPECT_FALSE(s[0].observe || s[1].observe || s[2].observe);
  for (const char* bad : {"fastest", "sqrt+fastest", "dtr+sqrt", "+"}) {
    try {
      (void)parse_strategies({bad}, "auto");
      ADD_FAILURE() << bad << " was accepted";
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find("every-layer"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("capuchin"), std::string::npos) << e.what();
    }
  }
}

TEST_F(CompareTest, BadInputFailsAndWritesNoResults) {
  const auto fails = [&](CompareOptions o, const std::string& message) {
    try {
      (void)run_compare(o);
      ADD_FAILURE() << "accepted; wanted: " << message;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(message), std::string::npos) << e.what();
    }
    EXPECT_FALSE(fs::exists(dir_ / "results.json")) << message;
  };
  CompareOptions o = options();
  o.workload.model = "gpt5";
  fails(o, "unknown model preset \"gpt5\"");
  o = options();
  o.strategies = {"sqrt", "fastest"};
  fails(o, "unknown strategy \"fastest\"");
  o = options();
  o.budgets = {"50%", "12XB"};
  fails(o, "--budget=\"12XB\" is not a byte size");
  o = options();
  o.budgets = {"0%"};
  fails(o, "--budget=\"0%\" is not a valid budget: a percentage must be in (0, 100]");
  o = options();
  o.budgets = {"50%", "64GiB"};
  fails(o, "--budget=\"64GiB\" (64.00 GiB) exceeds the device capacity (4.00 GiB)");
  o = options();
  o.budgets = {"50%pk"};
  fails(o, "\"pk\" after '%' is neither device nor peak");
  o = options();
  o.workload.dtype = "fp8";
  fails(o, "--dtype=\"fp8\"");
  o = options();
  o.workload.attention = "flash";
  fails(o, "attention \"flash\" is not accepted; accepted: eager");
  o = options();
  o.workload.model = "mlp";
  o.workload.attention = "fused";
  fails(o, "--attention applies to the GPT-2 models only");

  // A budget below what any strategy needs: every run is out of memory, which is an error,
  // and a results.json of an earlier sweep in the directory does not survive it.
  (void)run_compare(options());
  ASSERT_TRUE(fs::exists(dir_ / "results.json"));
  o = options();
  o.budgets = {"64KiB", "1%"};
  o.strategies = {"recompute", "every-layer"};
  o.steps = 1;
  try {
    (void)run_compare(o);
    ADD_FAILURE() << "a sweep where nothing fits succeeded";
  } catch (const NothingFits& e) {
    EXPECT_NE(std::string(e.what()).find("no strategy fits any budget"), std::string::npos);
  }
  EXPECT_FALSE(fs::exists(dir_ / "results.json"));

  // --out naming a file.
  fs::create_directories(dir_);
  std::ofstream(dir_ / "file") << "x";
  o = options();
  o.out = (dir_ / "file").string();
  fails(o, "exists and is not a directory");
}

}  // namespace
}  // namespace memento::cli
