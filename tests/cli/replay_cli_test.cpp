// `memento replay` called as a function: results.json is {"log", "assumptions", "runs"}
// with the unlimited runs first in "runs" and in results.csv, the files appear through
// Staging (nothing left behind), and a log whose recorded time is 0 has no slowdown.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "cli/replay.hpp"
#include "cli/replay_report.hpp"
#include "cli/temp_dir_test.hpp"

namespace memento::cli {
namespace {

namespace fs = std::filesystem;

class ReplayCliTest : public testing::TempDirTest {
 protected:
  void SetUp() override {
    TempDirTest::SetUp();
    fs::create_directories(dir_);
  }

  ReplayCliOptions options() const {
    ReplayCliOptions o;
    o.log = MEMENTO_REPLAY_DATA "/zero_time.jsonl";
    o.budgets = {"1", "0.5"};
    o.policies = {"dtr"};
    o.out = (dir_ / "out").string();
    o.print = false;
    return o;
  }
  static std::string slurp(const fs::path& p) {
    std::ifstream in(p);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }
};

TEST_F(ReplayCliTest, ResultsListEveryRunTheUnlimitedOnesFirst) {
  const ReplayCliOptions o = options();
  const ReplaySweep sweep = run_replay_sweep(o);
  ASSERT_EQ(sweep.unlimited.size(), 2u);  // counted, allocator
  ASSERT_EQ(sweep.runs.size(), 4u);       // 2 models x 1 policy x 2 budgets
  const auto json = nlohmann::json::parse(slurp(fs::path(*o.out) / "results.json"));
  ASSERT_TRUE(json.contains("runs"));
  EXPECT_FALSE(json.contains("unlimited"));
  const auto& runs = json["runs"];
  ASSERT_EQ(runs.size(), 6u);
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(runs[i]["policy"], "none");
    EXPECT_EQ(runs[i]["budget"], "unlimited");
    EXPECT_TRUE(runs[i]["budget_ratio"].is_null());
    EXPECT_TRUE(runs[i]["budget_bytes"].is_null());
    EXPECT_EQ(runs[i]["fits"], true);
    EXPECT_TRUE(runs[i]["slowdown"].is_null());  // the log's recorded time is 0
  }
  EXPECT_EQ(runs[0]["memory_model"], "counted");
  EXPECT_EQ(runs[0]["peak_bytes"], 3u << 20);
  EXPECT_EQ(runs[1]["memory_model"], "allocator");
  EXPECT_EQ(runs[2]["policy"], "dtr");
  EXPECT_DOUBLE_EQ(runs[2]["budget_ratio"].get<double>(), 1.0);
  for (const char* key :
       {"policy", "budget_ratio", "memory_model", "fits", "thrashed", "slowdown", "peak_bytes"})
    for (const auto& run : runs) EXPECT_TRUE(run.contains(key)) << key;
  // results.csv: a header and the same six rows; the unlimited ones with empty ratios.
  const std::string csv = slurp(fs::path(*o.out) / "results.csv");
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 7);
  EXPECT_NE(csv.find("\nnone,counted,,,true,false,,3145728,0,"), std::string::npos) << csv;
  EXPECT_NE(csv.find("\nnone,allocator,,,true,false,"), std::string::npos) << csv;
  // Only the three files: the staging directory is gone.
  std::size_t files = 0;
  for (const auto& e : fs::directory_iterator(*o.out)) {
    (void)e;
    ++files;
  }
  EXPECT_EQ(files, 3u);
}

TEST_F(ReplayCliTest, AZeroTimeLogPrintsNoSlowdown) {
  ReplayCliOptions o = options();
  o.print = true;  // the progress lines and table format every run
  const ReplaySweep sweep = run_replay_sweep(o);
  for (const ReplayRun& run : sweep.unlimited) {
    EXPECT_TRUE(run.result.fits);
    EXPECT_FALSE(run.result.slowdown);
  }
}

TEST_F(ReplayCliTest, AFailedSweepLeavesNoResults) {
  ReplayCliOptions o = options();
  fs::create_directories(*o.out);
  std::ofstream(fs::path(*o.out) / "results.json") << "{}\n";
  o.log = (dir_ / "missing.jsonl").string();
  EXPECT_ANY_THROW((void)run_replay_sweep(o));
  EXPECT_FALSE(fs::exists(fs::path(*o.out) / "results.json"));
}

}  // namespace
}  // namespace memento::cli
