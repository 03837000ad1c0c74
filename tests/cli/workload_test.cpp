// parse_model's host AdamW rate on sim: the flag when given, else a measured profile's
// (memento calibrate's host_optimizer_bandwidth), else the built-in 40 GB/s.
#include "cli/workload.hpp"

#include <gtest/gtest.h>

#include <filesystem>

#include "cli/temp_dir_test.hpp"
#include "memento/device_profile.hpp"
#include "memento/device_spec.hpp"
#include "memento/error.hpp"

namespace memento::cli {
namespace {

using WorkloadTest = testing::TempDirTest;

double update_bandwidth(const std::string& device, std::optional<double> gbps) {
  WorkloadOptions o;
  o.model = "gpt2-tiny";
  o.optimizer = "host";
  o.host_update_gbps = gbps;
  return parse_model(o, parse_device(device, "--device"), std::size_t{1} << 30)
      .host_update_bandwidth;
}

TEST_F(WorkloadTest, HostUpdateRateIsTheFlagsThenTheMeasuredProfilesThenTheDefault) {
  std::filesystem::create_directories(dir_);
  DeviceProfile p = find_device_profile("a100-40gb");
  p.source = "a test";
  p.host_optimizer_bandwidth = 123e9;
  const std::string path = (dir_ / "measured.json").string();
  write_device_profile(p, path);
  EXPECT_EQ(update_bandwidth("sim:" + path, std::nullopt), 123e9);
  EXPECT_EQ(update_bandwidth("sim:" + path, 7.0), 7e9);
  EXPECT_EQ(update_bandwidth("sim:a100-40gb", std::nullopt), 40e9);  // datasheet: none
  EXPECT_THROW((void)update_bandwidth("sim:a100-40gb", -1.0), ConfigError);
}

}  // namespace
}  // namespace memento::cli
