// parse_bytes, format_bytes, parse_budget, parse_device and parse_config. Every error case
// checks the exception type and that the message names the variable, the value and what is
// accepted.
#include "memento/config.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstddef>
#include <cstdlib>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "memento/error.hpp"
#include "memento/policy.hpp"

namespace memento {
namespace {

using ::testing::HasSubstr;

constexpr std::size_t KiB = std::size_t{1} << 10;
constexpr std::size_t MiB = std::size_t{1} << 20;
constexpr std::size_t GiB = std::size_t{1} << 30;
constexpr std::size_t TiB = std::size_t{1} << 40;

// Runs `f`, expects a ConfigError and returns its message.
template <typename F>
std::string config_error(F&& f) {
  try {
    f();
  } catch (const ConfigError& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "expected ConfigError, got another exception: " << e.what();
    return {};
  }
  ADD_FAILURE() << "expected ConfigError, nothing was thrown";
  return {};
}

// A fake environment: never the real one.
EnvLookup env(std::map<std::string, std::string> vars) {
  return [vars = std::move(vars)](const char* name) -> std::optional<std::string> {
    const auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

// ---- parse_bytes ---------------------------------------------------------------------

struct BytesCase {
  const char* text;
  std::size_t bytes;
};

TEST(ParseBytes, AcceptedForms) {
  const std::vector<BytesCase> cases = {
      {"1", 1},
      {"1073741824", GiB},
      {"0001024", 1024},
      {"18446744073709551615", std::size_t(-1)},
      {"512B", 512},
      {"512b", 512},
      {"1K", KiB},
      {"1KiB", KiB},
      {"1kib", KiB},
      {"1KB", 1000},
      {"1kb", 1000},
      {"3M", 3 * MiB},
      {"3MiB", 3 * MiB},
      {"512MB", 512000000},
      {"512mb", 512000000},
      {"8G", 8 * GiB},
      {"8GiB", 8589934592},
      {"8gib", 8589934592},
      {"8GIB", 8589934592},
      {"8GB", 8000000000},
      {"2T", 2 * TiB},
      {"2TiB", 2 * TiB},
      {"2TB", 2000000000000},
      {"1.5G", 1610612736},
      {"1.5GiB", 1610612736},
      {"0.5K", 512},
      {"1.5", 1},  // 1.5 bytes rounds down
      {"1.9999B", 1},
      {"0.001KB", 1},
      {"1.0000000001G", GiB},    // the fraction is below one byte: rounded down
      {"0.333333333333K", 341},  // floor(341.33)
      {"12.25MB", 12250000},
      {"8 GiB", 8 * GiB},  // whitespace between number and unit
      {"8\tGiB", 8 * GiB},
      {"  8GiB  ", 8 * GiB},  // leading and trailing whitespace
      {" 1.5 g ", 1610612736},
      {"16383.99999999999999T", 18014398509481983},  // exact, no double rounding
      {"16777215T", 16777215 * TiB},
  };
  for (const BytesCase& c : cases) {
    SCOPED_TRACE(c.text);
    EXPECT_EQ(parse_bytes(c.text, "MEMENTO_HOST_BUDGET"), c.bytes);
  }
}

struct BadCase {
  const char* text;
  const char* reason;  // substring of the message
};

TEST(ParseBytes, RejectedForms) {
  const std::vector<BadCase> cases = {
      {"", "empty"},
      {"   ", "empty"},
      {"-1G", "negative"},
      {"-1", "negative"},
      {"0", "zero"},
      {"0G", "zero"},
      {"0.0GiB", "zero"},
      {"000", "zero"},
      {"0.5", "less than one byte"},
      {"0.0000000001K", "less than one byte"},
      {"abc", "does not start with a number"},
      {"G", "does not start with a number"},
      {"+5G", "does not start with a number"},
      {".5G", "malformed number"},
      {"1.G", "malformed number"},
      {"1.2.3G", "malformed number \"1.2.3\""},
      {"1..2", "malformed number"},
      {"8XB", "unknown unit \"XB\""},
      {"8 GiB extra", "unknown unit \"GiB extra\""},
      {"8KIBB", "unknown unit \"KIBB\""},
      {"8P", "unknown unit \"P\""},
      {"1,5G", "unknown unit \",5G\""},
      {"0x10", "unknown unit \"x10\""},
      {"60%", "unknown unit \"%\""},
      {"1e9", "exponent notation is not accepted"},
      {"1E+9", "exponent notation is not accepted"},
      {"18446744073709551616", "exceeds the largest size"},
      {"99999999999999999999999", "exceeds the largest size"},
      {"16777216T", "exceeds the largest size"},  // 2^24 TiB = 2^64
      {"17179869184G", "exceeds the largest size"},
      {"18446744073709551615.5K", "exceeds the largest size"},
  };
  for (const BadCase& c : cases) {
    SCOPED_TRACE(c.text);
    const std::string msg = config_error([&] { (void)parse_bytes(c.text, "MEMENTO_HOST_BUDGET"); });
    EXPECT_THAT(msg, HasSubstr(std::string("MEMENTO_HOST_BUDGET=\"") + c.text + "\""));
    EXPECT_THAT(msg, HasSubstr(c.reason));
    EXPECT_THAT(msg, HasSubstr("accepted: a positive number with an optional unit"));
  }
}

TEST(ParseBytes, MessageReadsAsDocumented) {
  const std::string msg = config_error([] { (void)parse_bytes("8XB", "MEMENTO_HOST_BUDGET"); });
  EXPECT_THAT(msg,
              HasSubstr("MEMENTO_HOST_BUDGET=\"8XB\" is not a byte size: unknown unit \"XB\"; "
                        "accepted: a positive number with an optional unit B, K/KiB, M/MiB, G/GiB, "
                        "T/TiB (powers of 1024) or KB/MB/GB/TB (powers of 1000), e.g. 8GiB, "
                        "512MB, 1.5G, 1073741824"));
}

// ---- format_bytes --------------------------------------------------------------------

TEST(FormatBytes, BinaryUnitsWithTwoDecimals) {
  EXPECT_EQ(format_bytes(0), "0 B");
  EXPECT_EQ(format_bytes(512), "512 B");
  EXPECT_EQ(format_bytes(1023), "1023 B");
  EXPECT_EQ(format_bytes(1024), "1.00 KiB");
  EXPECT_EQ(format_bytes(1536), "1.50 KiB");
  EXPECT_EQ(format_bytes(MiB), "1.00 MiB");
  EXPECT_EQ(format_bytes(MiB - 1), "1.00 MiB");  // not "1024.00 KiB"
  EXPECT_EQ(format_bytes(1610612736), "1.50 GiB");
  EXPECT_EQ(format_bytes(8 * GiB), "8.00 GiB");
  EXPECT_EQ(format_bytes(80 * GiB), "80.00 GiB");
  EXPECT_EQ(format_bytes(3 * TiB), "3.00 TiB");
  EXPECT_EQ(format_bytes(std::size_t(-1)), "16.00 EiB");
}

// ---- parse_budget and BudgetSpec::resolve --------------------------------------------

TEST(ParseBudget, BytesForms) {
  for (const BytesCase& c : std::vector<BytesCase>{{"8GiB", 8589934592},
                                                   {"512MB", 512000000},
                                                   {"1.5G", 1610612736},
                                                   {"1073741824", GiB},
                                                   {" 4 gib ", 4 * GiB}}) {
    SCOPED_TRACE(c.text);
    const BudgetSpec b = parse_budget(c.text, "MEMENTO_BUDGET");
    EXPECT_EQ(b.bytes, c.bytes);
    EXPECT_EQ(b.percent, 0);
    EXPECT_EQ(b.text, c.text);
    EXPECT_EQ(b.source, "MEMENTO_BUDGET");
    EXPECT_EQ(b.resolve(16 * GiB), c.bytes);
  }
}

TEST(ParseBudget, PercentForms) {
  struct Case {
    const char* text;
    double percent;
    std::size_t of_100gib;
  };
  for (const Case& c : std::vector<Case>{{"60%", 60, 60 * GiB},
                                         {"12.5%", 12.5, 12 * GiB + GiB / 2},
                                         {"100%", 100, 100 * GiB},
                                         {"0.5%", 0.5, GiB / 2},
                                         {" 60 % ", 60, 60 * GiB},
                                         {"100.0%", 100, 100 * GiB}}) {
    SCOPED_TRACE(c.text);
    const BudgetSpec b = parse_budget(c.text, "MEMENTO_BUDGET");
    EXPECT_EQ(b.percent, c.percent);
    EXPECT_EQ(b.bytes, 0u);
    EXPECT_EQ(b.resolve(100 * GiB), c.of_100gib);
  }
  // floor(capacity * percent / 100)
  EXPECT_EQ(parse_budget("50%", "MEMENTO_BUDGET").resolve(3), 1u);
  EXPECT_EQ(parse_budget("33%", "MEMENTO_BUDGET").resolve(1000), 330u);
  EXPECT_EQ(parse_budget("33.3%", "MEMENTO_BUDGET").resolve(1000), 333u);  // not 332
  EXPECT_EQ(parse_budget("33.3%", "MEMENTO_BUDGET").resolve(1001), 333u);  // floor(333.33)
  EXPECT_EQ(parse_budget("60%", "MEMENTO_BUDGET").resolve(80 * GiB), 51539607552u);
  EXPECT_EQ(parse_budget("100%", "MEMENTO_BUDGET").resolve(std::size_t(-1) - 1),
            std::size_t(-1) - 1);
}

TEST(ParseBudget, BadPercent) {
  const std::vector<BadCase> cases = {
      {"0%", "must be in (0, 100]"},   {"0.0%", "must be in (0, 100]"},
      {"150%", "must be in (0, 100]"}, {"100.01%", "must be in (0, 100]"},
      {"-5%", "must be in (0, 100]"},  {"%", "no number"},
      {"abc%", "malformed number"},    {"1e2%", "malformed number"},
      {".5%", "malformed number"},     {"5.%", "malformed number"},
      {"1.2.3%", "malformed number"},  {"inf%", "malformed number"},
      {"60%%", "malformed number"},
  };
  for (const BadCase& c : cases) {
    SCOPED_TRACE(c.text);
    const std::string msg = config_error([&] { (void)parse_budget(c.text, "MEMENTO_BUDGET"); });
    EXPECT_THAT(msg, HasSubstr(std::string("MEMENTO_BUDGET=\"") + c.text + "\""));
    EXPECT_THAT(msg, HasSubstr(c.reason));
    EXPECT_THAT(msg, HasSubstr("accepted: a percentage of device memory in (0, 100]"));
  }
}

TEST(ParseBudget, BadBytesMentionBothForms) {
  for (const BadCase& c : std::vector<BadCase>{{"abc", "does not start with a number"},
                                               {"-1G", "negative"},
                                               {"0", "zero"},
                                               {"8XB", "unknown unit"},
                                               {"", "empty"}}) {
    SCOPED_TRACE(c.text);
    const std::string msg = config_error([&] { (void)parse_budget(c.text, "MEMENTO_BUDGET"); });
    EXPECT_THAT(msg, HasSubstr(std::string("MEMENTO_BUDGET=\"") + c.text + "\""));
    EXPECT_THAT(msg, HasSubstr(c.reason));
    EXPECT_THAT(msg, HasSubstr("e.g. 8GiB"));
    EXPECT_THAT(msg, HasSubstr("a percentage of device memory"));
  }
}

TEST(BudgetResolve, OverCapacity) {
  const BudgetSpec b = parse_budget("96GiB", "MEMENTO_BUDGET");
  EXPECT_EQ(b.resolve(96 * GiB), 96 * GiB);  // equal to capacity is fine
  const std::string msg = config_error([&] { (void)b.resolve(80 * GiB); });
  EXPECT_THAT(msg, HasSubstr("MEMENTO_BUDGET=\"96GiB\" (96.00 GiB) exceeds the device capacity "
                             "(80.00 GiB)"));
  EXPECT_THAT(msg, HasSubstr("accepted: at most the device capacity"));
}

TEST(BudgetResolve, OverCapacityFromConfNamesTheItem) {
  const Config c = parse_config(env({{"MEMENTO_CONF", "budget:1TB"}}));
  ASSERT_TRUE(c.budget);
  const std::string msg = config_error([&] { (void)c.budget->resolve(80 * GiB); });
  EXPECT_THAT(msg, HasSubstr("MEMENTO_CONF budget:\"1TB\" (931.32 GiB) exceeds the device "
                             "capacity (80.00 GiB)"));
}

TEST(BudgetResolve, PercentBelowOneByte) {
  const BudgetSpec b = parse_budget("1%", "MEMENTO_BUDGET");
  EXPECT_EQ(b.resolve(100), 1u);
  const std::string msg = config_error([&] { (void)b.resolve(99); });
  EXPECT_THAT(msg, HasSubstr("MEMENTO_BUDGET=\"1%\""));
  EXPECT_THAT(msg, HasSubstr("less than one byte"));
  EXPECT_THAT(msg, HasSubstr("(0, 100]"));
  // Even 100% of an empty device is no budget.
  EXPECT_THAT(config_error([] { (void)parse_budget("100%", "MEMENTO_BUDGET").resolve(0); }),
              HasSubstr("less than one byte"));
}

TEST(BudgetResolve, EmptySpecIsALogicError) {
  EXPECT_THROW((void)BudgetSpec{}.resolve(GiB), LogicError);
}

// ---- parse_device and DeviceSpec::to_string ------------------------------------------

TEST(ParseDevice, AcceptedForms) {
  struct Case {
    const char* text;
    BackendKind kind;
    const char* profile;
    int index;
    std::size_t host_capacity;
    const char* round_trip;
  };
  const std::vector<Case> cases = {
      {"host", BackendKind::host, "", 0, 0, "host"},
      {" host ", BackendKind::host, "", 0, 0, "host"},
      {"host:16GiB", BackendKind::host, "", 0, 16 * GiB, "host:16GiB"},
      {"host:512MB", BackendKind::host, "", 0, 512000000, "host:500000KiB"},
      {"host:1.5G", BackendKind::host, "", 0, 1610612736, "host:1536MiB"},
      {"host:1000", BackendKind::host, "", 0, 1000, "host:1000"},
      {"host:2TiB", BackendKind::host, "", 0, 2 * TiB, "host:2TiB"},
      {"sim:a100-40gb", BackendKind::sim, "a100-40gb", 0, 0, "sim:a100-40gb"},
      {"sim:a100-80gb", BackendKind::sim, "a100-80gb", 0, 0, "sim:a100-80gb"},
      {"sim:h100-sxm", BackendKind::sim, "h100-sxm", 0, 0, "sim:h100-sxm"},
      {"sim:h200", BackendKind::sim, "h200", 0, 0, "sim:h200"},
      {"sim:rtx4090", BackendKind::sim, "rtx4090", 0, 0, "sim:rtx4090"},
      {"sim:l4", BackendKind::sim, "l4", 0, 0, "sim:l4"},
      {"cuda", BackendKind::cuda, "", 0, 0, "cuda:0"},
      {"cuda:0", BackendKind::cuda, "", 0, 0, "cuda:0"},
      {"cuda:3", BackendKind::cuda, "", 3, 0, "cuda:3"},
      {"cuda:007", BackendKind::cuda, "", 7, 0, "cuda:7"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.text);
    const DeviceSpec d = parse_device(c.text, "MEMENTO_DEVICE");
    EXPECT_EQ(d.kind, c.kind);
    EXPECT_EQ(d.profile, c.profile);
    EXPECT_EQ(d.index, c.index);
    EXPECT_EQ(d.host_capacity, c.host_capacity);
    EXPECT_EQ(d.to_string(), c.round_trip);
    // to_string is parseable back to the same device.
    const DeviceSpec again = parse_device(d.to_string(), "MEMENTO_DEVICE");
    EXPECT_EQ(again.kind, d.kind);
    EXPECT_EQ(again.profile, d.profile);
    EXPECT_EQ(again.index, d.index);
    EXPECT_EQ(again.host_capacity, d.host_capacity);
  }
}

TEST(ParseDevice, RejectedForms) {
  const std::vector<BadCase> cases = {
      {"", "empty"},
      {"tpu", "unknown device kind \"tpu\""},
      {"gpu:0", "unknown device kind \"gpu\""},
      {"HOST", "unknown device kind \"HOST\""},
      {":0", "unknown device kind \"\""},
      {"host:", "nothing after \"host:\""},
      {"sim", "sim needs a profile"},
      {"sim:", "nothing after \"sim:\""},
      {"sim:h300", "unknown sim profile \"h300\""},
      {"sim:H100-SXM", "unknown sim profile \"H100-SXM\""},
      {"cuda:", "nothing after \"cuda:\""},
      {"cuda:-1", "bad cuda device index \"-1\""},
      {"cuda:+1", "bad cuda device index \"+1\""},
      {"cuda:x", "bad cuda device index \"x\""},
      {"cuda:1x", "bad cuda device index \"1x\""},
      {"cuda:1.5", "bad cuda device index \"1.5\""},
      {"cuda:0:1", "bad cuda device index \"0:1\""},
      {"cuda:99999999999", "bad cuda device index \"99999999999\""},
  };
  for (const BadCase& c : cases) {
    SCOPED_TRACE(c.text);
    const std::string msg = config_error([&] { (void)parse_device(c.text, "MEMENTO_DEVICE"); });
    EXPECT_THAT(msg, HasSubstr(std::string("MEMENTO_DEVICE=\"") + c.text + "\""));
    EXPECT_THAT(msg, HasSubstr(c.reason));
    EXPECT_THAT(msg, HasSubstr("accepted: host, host:CAPACITY"));
    EXPECT_THAT(msg, HasSubstr("cuda:N"));
    // The sim profile names are listed, so a typo can be fixed from the message alone.
    for (const char* name : {"a100-40gb", "a100-80gb", "h100-sxm", "h200", "rtx4090", "l4"})
      EXPECT_THAT(msg, HasSubstr(name));
  }
}

TEST(ParseDevice, BadHostCapacity) {
  for (const BadCase& c : std::vector<BadCase>{{"host:16XB", "unknown unit \"XB\""},
                                               {"host:0", "zero"},
                                               {"host:-1G", "negative"},
                                               {"host:abc", "does not start with a number"}}) {
    SCOPED_TRACE(c.text);
    const std::string msg = config_error([&] { (void)parse_device(c.text, "MEMENTO_DEVICE"); });
    EXPECT_THAT(msg, HasSubstr(std::string("MEMENTO_DEVICE=\"") + c.text + "\""));
    EXPECT_THAT(msg, HasSubstr(c.reason));
    EXPECT_THAT(msg, HasSubstr("e.g. 8GiB"));
  }
}

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
        "budget, host_budget, device, policy"}},
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

}  // namespace
}  // namespace memento

namespace memento {
namespace {

TEST(ParseConfigPolicy, AcceptsEveryPolicyFromEitherSource) {
  for (const std::string& name : policy_names()) {
    std::map<std::string, std::string> env{{"MEMENTO_POLICY", name}};
    Config c = parse_config([&](const char* k) -> std::optional<std::string> {
      auto it = env.find(k);
      return it == env.end() ? std::nullopt : std::optional<std::string>(it->second);
    });
    EXPECT_EQ(c.policy, name);
    std::map<std::string, std::string> conf{{"MEMENTO_CONF", "policy:" + name}};
    Config d = parse_config([&](const char* k) -> std::optional<std::string> {
      auto it = conf.find(k);
      return it == conf.end() ? std::nullopt : std::optional<std::string>(it->second);
    });
    EXPECT_EQ(d.policy, name);
  }
}

}  // namespace
}  // namespace memento
