// The trace file: MEMENTO_TRACE and the `trace` key of MEMENTO_CONF. A path is checked when
// the configuration is read (not empty, in a directory that exists), so that a typo fails at
// start-up, not after the run when the trace is written.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "config/config_testing.hpp"
#include "memento/config.hpp"
#include "memento/error.hpp"

namespace memento {
namespace {

using namespace config_testing;
namespace fs = std::filesystem;

// A directory that exists (with a ':' in its name) and a path whose directory does not.
class TraceConfig : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("memento-trace-config:" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  std::string in_dir(const std::string& name) const { return (dir_ / name).string(); }

  fs::path dir_;
};

TEST_F(TraceConfig, NotSetByDefault) { EXPECT_FALSE(parse_config(env({})).trace_file); }

TEST_F(TraceConfig, ConfKey) {
  const Config c = parse_config(env({{"MEMENTO_CONF", "budget:8GiB,trace:run.json"}}));
  ASSERT_TRUE(c.trace_file);
  EXPECT_EQ(*c.trace_file, "run.json");
  ASSERT_TRUE(c.budget);
  EXPECT_EQ(c.budget->bytes, 8 * GiB);
}

TEST_F(TraceConfig, ConfAbsolutePathWithColons) {
  // Only the first ':' separates key and value; a ',' ends the value.
  const std::string path = in_dir("a:b.json");
  const Config c = parse_config(env({{"MEMENTO_CONF", "trace:" + path + ",device:sim:h100-sxm"}}));
  ASSERT_TRUE(c.trace_file);
  EXPECT_EQ(*c.trace_file, path);
  ASSERT_TRUE(c.device);
  EXPECT_EQ(c.device->profile, "h100-sxm");

  const Config tmp = parse_config(env({{"MEMENTO_CONF", "trace:/tmp/a.json"}}));
  ASSERT_TRUE(tmp.trace_file);
  EXPECT_EQ(*tmp.trace_file, "/tmp/a.json");
}

TEST_F(TraceConfig, ConfValueIsTrimmed) {
  const Config c = parse_config(env({{"MEMENTO_CONF", " trace : run.json , policy:lru"}}));
  ASSERT_TRUE(c.trace_file);
  EXPECT_EQ(*c.trace_file, "run.json");
}

TEST_F(TraceConfig, OwnVariable) {
  const Config c = parse_config(env({{"MEMENTO_TRACE", in_dir("run.json")}}));
  ASSERT_TRUE(c.trace_file);
  EXPECT_EQ(*c.trace_file, in_dir("run.json"));
  // The variable is not split at commas.
  const Config comma = parse_config(env({{"MEMENTO_TRACE", in_dir("a,b.json")}}));
  ASSERT_TRUE(comma.trace_file);
  EXPECT_EQ(*comma.trace_file, in_dir("a,b.json"));
}

TEST_F(TraceConfig, BothSourcesAgree) {
  const Config same = parse_config(
      env({{"MEMENTO_TRACE", "./run.json"}, {"MEMENTO_CONF", "trace:run.json,budget:1G"}}));
  ASSERT_TRUE(same.trace_file);
  EXPECT_EQ(*same.trace_file, "./run.json");  // the variable's spelling, as for other keys
}

TEST_F(TraceConfig, RejectedValues) {
  const std::string missing = in_dir("no-such-dir") + "/run.json";
  const std::vector<std::pair<std::map<std::string, std::string>, std::vector<std::string>>> cases =
      {
          {{{"MEMENTO_TRACE", "a.json"}, {"MEMENTO_CONF", "trace:b.json"}},
           {"MEMENTO_TRACE=\"a.json\" conflicts with MEMENTO_CONF trace:\"b.json\""}},
          {{{"MEMENTO_TRACE", ""}},
           {"MEMENTO_TRACE=\"\" is not a trace file", "it is empty", "accepted: the path"}},
          {{{"MEMENTO_TRACE", "  "}}, {"MEMENTO_TRACE=\"  \"", "it is empty"}},
          {{{"MEMENTO_CONF", "trace:"}},
           {"MEMENTO_CONF trace:\"\" is not a trace file", "it is empty", "accepted"}},
          {{{"MEMENTO_TRACE", missing}},
           {"MEMENTO_TRACE=\"" + missing + "\" is not a trace file",
            "directory \"" + in_dir("no-such-dir") + "\" does not exist",
            "accepted: the path of the JSON file to write, in an existing directory"}},
          {{{"MEMENTO_CONF", "trace:" + missing}},
           {"MEMENTO_CONF trace:\"" + missing + "\"", "does not exist", "accepted"}},
          {{{"MEMENTO_TRACE", dir_.string()}}, {"it names a directory", "accepted"}},
          {{{"MEMENTO_TRACE", dir_.string() + "/"}}, {"it names a directory"}},
          // A comma in MEMENTO_CONF ends the value: the rest is a malformed item.
          {{{"MEMENTO_CONF", "trace:a,b.json"}},
           {"item \"b.json\" is not key:value", "a value cannot contain a comma"}},
      };
  for (const auto& [vars, expected] : cases) {
    SCOPED_TRACE(vars.begin()->second);
    const std::string msg = config_error([&v = vars] { (void)parse_config(env(v)); });
    for (const std::string& part : expected) EXPECT_THAT(msg, HasSubstr(part));
  }
}

TEST_F(TraceConfig, ParentThatIsAFile) {
  const std::string file = in_dir("plain-file");
  { std::ofstream(file) << "x"; }
  const std::string msg = config_error([&] { (void)parse_trace_file(file + "/run.json", "X"); });
  EXPECT_THAT(msg, HasSubstr("X=\"" + file + "/run.json\" is not a trace file"));
}

TEST_F(TraceConfig, UnknownKeyMessageListsTrace) {
  const std::string msg = config_error([] {
    (void)parse_config(env({{"MEMENTO_CONF", "trac:x"}}));
  });
  EXPECT_THAT(msg, HasSubstr("keys budget, host_budget, device, policy, trace"));
}

}  // namespace
}  // namespace memento
