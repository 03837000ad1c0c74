// parse_config and config_from_env: the variables, MEMENTO_CONF and how they combine. Every
// error case checks the exception type and that the message names the variable, the value
// and what is accepted.
#include "memento/config.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstddef>
#include <cstdlib>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "config/config_testing.hpp"
#include "memento/error.hpp"
#include "memento/policy.hpp"

namespace memento {
namespace {

using namespace config_testing;

// ---- parse_config ---------------------------------------------------------------------

TEST(ParseConfig, NothingSet) {
  const Config c = parse_config(env({}));
  EXPECT_FALSE(c.budget);
  EXPECT_FALSE(c.host_budget);
  EXPECT_FALSE(c.device);
}

TEST(ParseConfig, OwnVariables) {
  const Config c = parse_config(env({{"MEMENTO_BUDGET", "60%"},
                                     {"MEMENTO_HOST_BUDGET", "32GiB"},
                                     {"MEMENTO_DEVICE", "sim:h100-sxm"}}));
  ASSERT_TRUE(c.budget);
  EXPECT_EQ(c.budget->percent, 60);
  EXPECT_EQ(c.budget->source, "MEMENTO_BUDGET");
  EXPECT_EQ(c.budget->text, "60%");
  ASSERT_TRUE(c.host_budget);
  EXPECT_EQ(*c.host_budget, 32 * GiB);
  ASSERT_TRUE(c.device);
  EXPECT_EQ(c.device->kind, BackendKind::sim);
  EXPECT_EQ(c.device->profile, "h100-sxm");
}

TEST(ParseConfig, ConfOnly) {
  const Config c =
      parse_config(env({{"MEMENTO_CONF", " budget : 8GiB , host_budget:512MB,device:sim:h200 "}}));
  ASSERT_TRUE(c.budget);
  EXPECT_EQ(c.budget->bytes, 8589934592u);
  EXPECT_EQ(c.budget->source, "MEMENTO_CONF budget");
  EXPECT_EQ(c.budget->text, "8GiB");
  ASSERT_TRUE(c.host_budget);
  EXPECT_EQ(*c.host_budget, 512000000u);
  ASSERT_TRUE(c.device);
  EXPECT_EQ(c.device->kind, BackendKind::sim);
  EXPECT_EQ(c.device->profile, "h200");
}

TEST(ParseConfig, ConfDeviceSplitsAtFirstColon) {
  const Config c = parse_config(env({{"MEMENTO_CONF", "device:host:16GiB"}}));
  ASSERT_TRUE(c.device);
  EXPECT_EQ(c.device->kind, BackendKind::host);
  EXPECT_EQ(c.device->host_capacity, 16 * GiB);
  const Config cuda = parse_config(env({{"MEMENTO_CONF", "device:cuda:2"}}));
  ASSERT_TRUE(cuda.device);
  EXPECT_EQ(cuda.device->index, 2);
}

TEST(ParseConfig, MixedSourcesAndAgreeingDuplicates) {
  // Each key from a different place.
  const Config mixed = parse_config(
      env({{"MEMENTO_BUDGET", "4GiB"}, {"MEMENTO_CONF", "host_budget:1G,device:cuda"}}));
  ASSERT_TRUE(mixed.budget && mixed.host_budget && mixed.device);
  EXPECT_EQ(mixed.budget->bytes, 4 * GiB);
  EXPECT_EQ(*mixed.host_budget, GiB);
  EXPECT_EQ(mixed.device->kind, BackendKind::cuda);
  // Each value remembers where it came from, for errors found after parsing.
  EXPECT_EQ(mixed.budget->source, "MEMENTO_BUDGET");
  EXPECT_EQ(mixed.sources.host_budget, "MEMENTO_CONF host_budget");
  EXPECT_EQ(mixed.sources.device, "MEMENTO_CONF device");
  EXPECT_EQ(mixed.sources.policy, "");

  // The same key in both places with equal values (even written differently) is fine; the
  // variable is reported as the source.
  const Config same = parse_config(env({{"MEMENTO_BUDGET", "8GiB"},
                                        {"MEMENTO_HOST_BUDGET", "1024MiB"},
                                        {"MEMENTO_DEVICE", "cuda"},
                                        {"MEMENTO_CONF",
                                         "budget:8192M,host_budget:1G,"
                                         "device:cuda:0"}}));
  ASSERT_TRUE(same.budget && same.host_budget && same.device);
  EXPECT_EQ(same.budget->bytes, 8 * GiB);
  EXPECT_EQ(same.budget->source, "MEMENTO_BUDGET");
  EXPECT_EQ(*same.host_budget, GiB);
  EXPECT_EQ(same.device->index, 0);
  EXPECT_EQ(same.sources.device, "MEMENTO_DEVICE");
  EXPECT_EQ(same.sources.host_budget, "MEMENTO_HOST_BUDGET");
}

struct EnvCase {
  const char* name;
  std::map<std::string, std::string> vars;
  std::vector<std::string> expected;  // substrings of the message
};

TEST(ParseConfig, RejectedEnvironments) {
  const std::vector<EnvCase> cases = {
      // MEMENTO_BUDGET
      {"budget malformed",
       {{"MEMENTO_BUDGET", "abc"}},
       {"MEMENTO_BUDGET=\"abc\"", "does not start with a number", "accepted", "60%"}},
      {"budget negative",
       {{"MEMENTO_BUDGET", "-1G"}},
       {"MEMENTO_BUDGET=\"-1G\"", "negative", "accepted"}},
      {"budget zero", {{"MEMENTO_BUDGET", "0"}}, {"MEMENTO_BUDGET=\"0\"", "zero", "accepted"}},
      {"budget zero percent", {{"MEMENTO_BUDGET", "0%"}}, {"MEMENTO_BUDGET=\"0%\"", "(0, 100]"}},
      {"budget over 100 percent",
       {{"MEMENTO_BUDGET", "150%"}},
       {"MEMENTO_BUDGET=\"150%\"", "(0, 100]"}},
      {"budget unknown unit",
       {{"MEMENTO_BUDGET", "8XB"}},
       {"MEMENTO_BUDGET=\"8XB\"", "unknown unit \"XB\"", "KiB"}},
      {"budget empty", {{"MEMENTO_BUDGET", ""}}, {"MEMENTO_BUDGET=\"\"", "empty", "accepted"}},
      // MEMENTO_HOST_BUDGET
      {"host_budget malformed",
       {{"MEMENTO_HOST_BUDGET", "1.2.3G"}},
       {"MEMENTO_HOST_BUDGET=\"1.2.3G\"", "malformed number", "accepted"}},
      {"host_budget negative",
       {{"MEMENTO_HOST_BUDGET", "-2GiB"}},
       {"MEMENTO_HOST_BUDGET=\"-2GiB\"", "negative", "accepted"}},
      {"host_budget zero",
       {{"MEMENTO_HOST_BUDGET", "0GiB"}},
       {"MEMENTO_HOST_BUDGET=\"0GiB\"", "zero", "accepted"}},
      {"host_budget unknown unit",
       {{"MEMENTO_HOST_BUDGET", "8XB"}},
       {"MEMENTO_HOST_BUDGET=\"8XB\"", "unknown unit \"XB\"", "accepted"}},
      {"host_budget percent",
       {{"MEMENTO_HOST_BUDGET", "50%"}},
       {"MEMENTO_HOST_BUDGET=\"50%\"", "unknown unit \"%\"", "accepted"}},
      {"host_budget overflow",
       {{"MEMENTO_HOST_BUDGET", "99999999999999999999"}},
       {"MEMENTO_HOST_BUDGET=\"99999999999999999999\"", "exceeds the largest size"}},
      {"host_budget empty",
       {{"MEMENTO_HOST_BUDGET", ""}},
       {"MEMENTO_HOST_BUDGET=\"\"", "empty", "accepted"}},
      // MEMENTO_DEVICE
      {"device unknown kind",
       {{"MEMENTO_DEVICE", "tpu:0"}},
       {"MEMENTO_DEVICE=\"tpu:0\"", "unknown device kind", "accepted: host"}},
      {"device unknown profile",
       {{"MEMENTO_DEVICE", "sim:h300"}},
       {"MEMENTO_DEVICE=\"sim:h300\"", "unknown sim profile", "h100-sxm"}},
      {"device bad cuda index",
       {{"MEMENTO_DEVICE", "cuda:-1"}},
       {"MEMENTO_DEVICE=\"cuda:-1\"", "bad cuda device index", "cuda:N"}},
      {"device bad host capacity",
       {{"MEMENTO_DEVICE", "host:0"}},
       {"MEMENTO_DEVICE=\"host:0\"", "zero", "accepted"}},
      {"device empty",
       {{"MEMENTO_DEVICE", ""}},
       {"MEMENTO_DEVICE=\"\"", "empty", "accepted: host"}},
      // MEMENTO_CONF structure
      {"conf empty",
       {{"MEMENTO_CONF", ""}},
       {"MEMENTO_CONF=\"\"", "empty", "key:value pairs", "budget, host_budget, device"}},
      {"conf empty item",
       {{"MEMENTO_CONF", "budget:1G,,device:cuda"}},
       {"MEMENTO_CONF=\"budget:1G,,device:cuda\"", "item 2 is empty", "key:value"}},
      {"conf trailing comma",
       {{"MEMENTO_CONF", "budget:1G,"}},
       {"MEMENTO_CONF=\"budget:1G,\"", "item 2 is empty", "key:value"}},
      {"conf blank item", {{"MEMENTO_CONF", "budget:1G, ,device:cuda"}}, {"item 2 is empty"}},
      {"conf missing colon",
       {{"MEMENTO_CONF", "budget=8GiB"}},
       {"MEMENTO_CONF=\"budget=8GiB\"", "item \"budget=8GiB\" is not key:value",
        "budget, host_budget, device"}},
      {"conf unknown key",
       {{"MEMENTO_CONF", "budget:1G,colour:blue"}},
       {"MEMENTO_CONF=\"budget:1G,colour:blue\"", "unknown key \"colour\"",
        "budget, host_budget, device, policy, trace"}},
      {"policy unknown",
       {{"MEMENTO_POLICY", "fifo"}},
       {"MEMENTO_POLICY=\"fifo\" is not an eviction policy",
        "accepted: lru, largest, recompute, offload, dtr, capuchin, auto"}},
      {"policy empty", {{"MEMENTO_POLICY", ""}}, {"MEMENTO_POLICY=\"\"", "accepted: lru"}},
      {"conf policy unknown",
       {{"MEMENTO_CONF", "policy:LRU"}},
       {"MEMENTO_CONF policy:\"LRU\" is not an eviction policy", "accepted: lru"}},
      {"policy conflict",
       {{"MEMENTO_POLICY", "dtr"}, {"MEMENTO_CONF", "policy:lru"}},
       {"MEMENTO_POLICY=\"dtr\" conflicts with MEMENTO_CONF policy:\"lru\""}},
      {"conf key case", {{"MEMENTO_CONF", "Budget:1G"}}, {"unknown key \"Budget\""}},
      {"conf duplicate key",
       {{"MEMENTO_CONF", "budget:1G,budget:1G"}},
       {"MEMENTO_CONF=\"budget:1G,budget:1G\"", "key \"budget\" is given twice", "accepted"}},
      // MEMENTO_CONF values
      {"conf budget malformed",
       {{"MEMENTO_CONF", "budget:abc"}},
       {"MEMENTO_CONF budget:\"abc\"", "does not start with a number", "accepted"}},
      {"conf budget empty value",
       {{"MEMENTO_CONF", "budget:"}},
       {"MEMENTO_CONF budget:\"\"", "empty", "accepted"}},
      {"conf budget negative",
       {{"MEMENTO_CONF", "budget:-1G"}},
       {"MEMENTO_CONF budget:\"-1G\"", "negative"}},
      {"conf budget percent",
       {{"MEMENTO_CONF", "budget:150%"}},
       {"MEMENTO_CONF budget:\"150%\"", "(0, 100]"}},
      {"conf host_budget zero",
       {{"MEMENTO_CONF", "host_budget:0"}},
       {"MEMENTO_CONF host_budget:\"0\"", "zero", "accepted"}},
      {"conf host_budget unit",
       {{"MEMENTO_CONF", "host_budget:3XB"}},
       {"MEMENTO_CONF host_budget:\"3XB\"", "unknown unit \"XB\""}},
      {"conf device kind",
       {{"MEMENTO_CONF", "device:tpu"}},
       {"MEMENTO_CONF device:\"tpu\"", "unknown device kind", "accepted: host"}},
      {"conf device profile",
       {{"MEMENTO_CONF", "device:sim:nope"}},
       {"MEMENTO_CONF device:\"sim:nope\"", "unknown sim profile \"nope\"", "rtx4090"}},
      {"conf device cuda index",
       {{"MEMENTO_CONF", "device:cuda:a"}},
       {"MEMENTO_CONF device:\"cuda:a\"", "bad cuda device index"}},
      {"conf device empty", {{"MEMENTO_CONF", "device: "}}, {"MEMENTO_CONF device:\"\"", "empty"}},
      // Conflicting sources
      {"budget conflict",
       {{"MEMENTO_BUDGET", "8GiB"}, {"MEMENTO_CONF", "budget:4GiB"}},
       {"MEMENTO_BUDGET=\"8GiB\" conflicts with MEMENTO_CONF budget:\"4GiB\""}},
      {"budget conflict percent",
       {{"MEMENTO_BUDGET", "50%"}, {"MEMENTO_CONF", "budget:60%"}},
       {"MEMENTO_BUDGET=\"50%\" conflicts with MEMENTO_CONF budget:\"60%\""}},
      {"host_budget conflict",
       {{"MEMENTO_HOST_BUDGET", "1GB"}, {"MEMENTO_CONF", "host_budget:1GiB"}},
       {"MEMENTO_HOST_BUDGET=\"1GB\" conflicts with MEMENTO_CONF host_budget:\"1GiB\""}},
      {"device conflict",
       {{"MEMENTO_DEVICE", "cuda:0"}, {"MEMENTO_CONF", "device:cuda:1"}},
       {"MEMENTO_DEVICE=\"cuda:0\" conflicts with MEMENTO_CONF device:\"cuda:1\""}},
      {"device conflict kind",
       {{"MEMENTO_DEVICE", "sim:h200"}, {"MEMENTO_CONF", "device:host"}},
       {"MEMENTO_DEVICE=\"sim:h200\" conflicts with MEMENTO_CONF device:\"host\""}},
      // A bad variable is reported even when MEMENTO_CONF is fine, and vice versa.
      {"bad var good conf",
       {{"MEMENTO_DEVICE", "gpu"}, {"MEMENTO_CONF", "budget:1G"}},
       {"MEMENTO_DEVICE=\"gpu\"", "unknown device kind"}},
  };
  for (const EnvCase& c : cases) {
    SCOPED_TRACE(c.name);
    const std::string msg = config_error([&] { (void)parse_config(env(c.vars)); });
    for (const std::string& part : c.expected) EXPECT_THAT(msg, HasSubstr(part));
  }
}

// The one test that touches the real environment; it restores what it changes.
TEST(ConfigFromEnv, ReadsTheProcessEnvironment) {
  const char* names[] = {"MEMENTO_BUDGET", "MEMENTO_HOST_BUDGET", "MEMENTO_DEVICE", "MEMENTO_CONF"};
  std::map<std::string, std::optional<std::string>> saved;
  for (const char* n : names) {
    const char* v = std::getenv(n);
    saved[n] = v ? std::optional<std::string>(v) : std::nullopt;
    ::unsetenv(n);
  }
  const auto restore = [&] {
    for (const auto& [n, v] : saved) {
      if (v) {
        ::setenv(n.c_str(), v->c_str(), 1);
      } else {
        ::unsetenv(n.c_str());
      }
    }
  };

  ::setenv("MEMENTO_BUDGET", "60%", 1);
  ::setenv("MEMENTO_CONF", "host_budget:2GiB,device:sim:l4", 1);
  std::optional<Config> c;
  std::string bad;
  try {
    c = config_from_env();
    ::setenv("MEMENTO_DEVICE", "", 1);  // set but empty is an error, not "unset"
    bad = config_error([] { (void)config_from_env(); });
  } catch (...) {
    restore();
    throw;
  }
  restore();

  ASSERT_TRUE(c);
  ASSERT_TRUE(c->budget);
  EXPECT_EQ(c->budget->percent, 60);
  ASSERT_TRUE(c->host_budget);
  EXPECT_EQ(*c->host_budget, 2 * GiB);
  ASSERT_TRUE(c->device);
  EXPECT_EQ(c->device->profile, "l4");
  EXPECT_THAT(bad, HasSubstr("MEMENTO_DEVICE=\"\""));
  EXPECT_THAT(bad, HasSubstr("empty"));
}

TEST(ParseConfigPolicy, AcceptsEveryPolicyFromEitherSource) {
  for (const std::string& name : policy_names()) {
    EXPECT_EQ(parse_config(env({{"MEMENTO_POLICY", name}})).policy, name);
    EXPECT_EQ(parse_config(env({{"MEMENTO_CONF", "policy:" + name}})).policy, name);
  }
}

}  // namespace
}  // namespace memento
