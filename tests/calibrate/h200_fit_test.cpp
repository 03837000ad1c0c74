// The sim with a profile fitted from runs recorded on an H200 (tests/calibrate/data) against
// those runs: the unlimited step within 15% and the every-layer and selective overheads
// within 5 percentage points (issue 16's targets). The unlimited step and the every-layer
// overhead are what the fit scales to; selective is a prediction.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "calibrate/calibrate.hpp"
#include "calibrate/sim_runs.hpp"
#include "memento/device_profile.hpp"
#include "memento/error.hpp"

namespace memento::calibrate {
namespace {

const std::string kData = std::string(MEMENTO_CALIBRATE_DATA) + "/h200-2026-12-04/";

nlohmann::json results() {
  std::ifstream in(kData + "compare-cuda-b8-results.json");
  return nlohmann::json::parse(in);
}

// The recorded overhead and budget fraction of `strategy` at `budget` ("70%").
std::pair<double, double> recorded(const std::string& strategy, const std::string& budget) {
  const nlohmann::json all = results();  // kept alive through the loop
  for (const auto& run : all["runs"])
    if (run["strategy"] == strategy && run["budget"] == budget)
      return {run["overhead"].get<double>(), run["budget_fraction"].get<double>()};
  ADD_FAILURE() << strategy << " at " << budget << " is not in the results";
  return {0, 0};
}

class H200Fit : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    profile_ = new DeviceProfile(fit_profile(kData + "compare-cuda-b8-results.json",
                                             kData + "trace-gpt2-124m-bf16-blocking.json",
                                             find_device_profile("h200")));
    model_ = workload_of(kData + "compare-cuda-b8-results.json");
    unlimited_ = sim_run(*profile_, model_, "none", 0);
  }
  static void TearDownTestSuite() { delete profile_; }

  static double overhead(const std::string& plan, double fraction) {
    const auto budget =
        static_cast<std::size_t>(fraction * static_cast<double>(unlimited_.peak_reserved));
    return sim_run(*profile_, model_, plan, budget).step_seconds / unlimited_.step_seconds - 1;
  }

  static inline DeviceProfile* profile_ = nullptr;
  static inline nn::Gpt2Config model_;
  static inline SimRun unlimited_;
};

TEST_F(H200Fit, ReproducesTheUnlimitedStepWithin15Percent) {
  const double measured = results()["unlimited"]["step_time_s"].get<double>();
  EXPECT_NEAR(unlimited_.step_seconds / measured, 1.0, 0.15)
      << "sim " << unlimited_.step_seconds << " s, measured " << measured << " s";
}

TEST_F(H200Fit, EveryLayerOverheadWithin5Points) {
  const auto [measured, fraction] = recorded("every-layer", "70%");
  EXPECT_NEAR(overhead("every-layer", fraction), measured, 0.05);
}

TEST_F(H200Fit, SelectiveOverheadWithin5Points) {
  const auto [measured, fraction] = recorded("selective", "70%");
  EXPECT_NEAR(overhead("selective", fraction), measured, 0.05);
}

TEST_F(H200Fit, TheProfileSaysWhereItsFiguresComeFrom) {
  EXPECT_NE(profile_->source.find("fitted"), std::string::npos) << profile_->source;
  EXPECT_NE(profile_->source.find("compare-cuda-b8-results.json"), std::string::npos);
  EXPECT_EQ(find_device_profile("h200").source, "datasheet");
  // The recorded results predate stated_rates (cuda stated none then): none, and said so.
  ASSERT_TRUE(profile_->stated_rates.has_value());
  EXPECT_EQ(*profile_->stated_rates, StatedRates{});
  EXPECT_NE(profile_->source.find("predate stated_rates"), std::string::npos) << profile_->source;
  // The slow attention output projection is in the table as measured.
  bool found = false;
  for (const MeasuredKernel& k : profile_->kernels) found |= k.name == "linear 8192x768x768";
  EXPECT_TRUE(found);
}

}  // namespace
}  // namespace memento::calibrate

namespace memento::calibrate {
namespace {

// Out of sample: the profile fitted on eager attention predicts the run with fused
// attention (a kernel the trace never measured), recorded on the same GPU.
// A blocking trace whose compute span has a malformed field is named, not skipped.
TEST(H200FitMalformed, AComputeSpanWithABadFieldIsNamed) {
  const auto path = std::filesystem::temp_directory_path() /
                    ("memento_bad_trace_" +
                     std::to_string(::testing::UnitTest::GetInstance()->random_seed()) + ".json");
  std::ofstream(path) << R"({"traceEvents": [
    {"ph": "X", "cat": "compute", "name": "layernorm", "ts": 1, "dur": 5},
    {"ph": "X", "cat": "compute", "name": "gelu", "ts": 9, "dur": "long"}]})";
  try {
    (void)fit_profile(kData + "compare-cuda-b8-results.json", path, find_device_profile("h200"));
    ADD_FAILURE() << "a malformed compute span was accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("event 1 (compute span)"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(path.string()), std::string::npos) << e.what();
  }
  std::filesystem::remove(path);
}

// Results that record what the backend stated give the profile those rates.
TEST(H200FitStatedRates, ComeFromTheResults) {
  nlohmann::json j = results();
  j["assumptions"]["stated_rates"] = {{"matrix_flops", 989e12},
                                      {"vector_flops", 67e12},
                                      {"memory_bandwidth", 4.8e12},
                                      {"h2d_bandwidth", 50e9},
                                      {"d2h_bandwidth", 50e9}};
  const auto path = std::filesystem::temp_directory_path() /
                    ("memento_stated_" +
                     std::to_string(::testing::UnitTest::GetInstance()->random_seed()) + ".json");
  std::ofstream(path) << j.dump();
  const DeviceProfile p =
      fit_profile(path, kData + "trace-gpt2-124m-bf16-blocking.json", find_device_profile("h200"));
  std::filesystem::remove(path);
  ASSERT_TRUE(p.stated_rates.has_value());
  EXPECT_EQ(*p.stated_rates, (StatedRates{989e12, 67e12, 4.8e12, 50e9, 50e9}));
  EXPECT_EQ(p.source.find("predate"), std::string::npos) << p.source;
}

TEST(H200FitOutOfSample, PredictsTheFusedAttentionStepWithin15Percent) {
  const DeviceProfile p =
      fit_profile(kData + "compare-cuda-b8-results.json",
                  kData + "trace-gpt2-124m-bf16-blocking.json", find_device_profile("h200"));
  const nn::Gpt2Config fused = workload_of(kData + "compare-cuda-b8-fused-results.json");
  ASSERT_EQ(fused.attention, nn::Attention::fused);
  std::ifstream in(kData + "compare-cuda-b8-fused-results.json");
  const double measured = nlohmann::json::parse(in)["unlimited"]["step_time_s"].get<double>();
  EXPECT_NEAR(sim_run(p, fused, "none", 0).step_seconds / measured, 1.0, 0.15);
}

}  // namespace
}  // namespace memento::calibrate
