// parse_budget and BudgetSpec: every form in every syntax (a bare share of device memory
// or of the unlimited peak; replay's fractions), resolve against the device and the peak,
// and errors that name where the value came from.
#include "memento/budget.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "config/config_testing.hpp"
#include "memento/config.hpp"
#include "memento/error.hpp"

namespace memento {
namespace {

using namespace config_testing;

struct BytesCase {
  const char* text;
  std::size_t bytes;
};

struct BadCase {
  const char* text;
  const char* reason;
};

constexpr BudgetSyntax kDevice{};                                // MEMENTO_BUDGET, train
constexpr BudgetSyntax kPeak{.bare_percent = BudgetBase::peak};  // compare, plan
constexpr BudgetSyntax kReplay{.bare_percent = BudgetBase::peak, .fractions = true};

// The one parser over every form and syntax: what each text means where it is read.
TEST(ParseBudget, Table) {
  struct Case {
    const char* text;
    BudgetSyntax syntax;
    std::size_t bytes;  // absolute, or 0 for a share
    double percent;
    BudgetBase base;
    std::size_t resolved;  // on a 100 GiB device whose unlimited peak is 10 GiB
  };
  const std::vector<Case> cases = {
      {"8GiB", kDevice, 8 * GiB, 0, BudgetBase::device, 8 * GiB},
      {"8GiB", kPeak, 8 * GiB, 0, BudgetBase::device, 8 * GiB},
      {"8GiB", kReplay, 8 * GiB, 0, BudgetBase::device, 8 * GiB},
      {"1073741824", kReplay, GiB, 0, BudgetBase::device, GiB},
      {"60%", kDevice, 0, 60, BudgetBase::device, 60 * GiB},
      {"60%", kPeak, 0, 60, BudgetBase::peak, 6 * GiB},
      {"60%device", kPeak, 0, 60, BudgetBase::device, 60 * GiB},
      {"60% Device", kPeak, 0, 60, BudgetBase::device, 60 * GiB},
      {"60%peak", kDevice, 0, 60, BudgetBase::peak, 6 * GiB},
      {" 50 % peak ", kDevice, 0, 50, BudgetBase::peak, 5 * GiB},
      {"0.5", kReplay, 0, 50, BudgetBase::peak, 5 * GiB},
      {"1", kReplay, 0, 100, BudgetBase::peak, 10 * GiB},
      {"1.0", kReplay, 0, 100, BudgetBase::peak, 10 * GiB},
      {"2", kReplay, 2, 0, BudgetBase::device, 2},  // above 1: bytes
      {"25%", kReplay, 0, 25, BudgetBase::peak, 10 * GiB / 4},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.text);
    const BudgetSpec b = parse_budget(c.text, "--budget", c.syntax);
    EXPECT_EQ(b.bytes, c.bytes);
    EXPECT_DOUBLE_EQ(b.percent, c.percent);
    if (b.is_share()) {
      EXPECT_EQ(b.base, c.base);
    }
    EXPECT_EQ(b.text, c.text);
    EXPECT_EQ(b.source, "--budget");
    EXPECT_EQ(b.resolve(100 * GiB, 10 * GiB), c.resolved);
  }
}

TEST(ParseBudget, DescribeSaysWhatAShareIsOf) {
  EXPECT_EQ(parse_budget("60%", "MEMENTO_BUDGET").describe(), "60% of device memory");
  EXPECT_EQ(parse_budget("70%", "--budget", kPeak).describe(), "70% of the unlimited peak");
  EXPECT_EQ(parse_budget("0.5", "--budget", kReplay).describe(), "50% of the unlimited peak");
  EXPECT_EQ(parse_budget("12.5%device", "--budget", kPeak).describe(), "12.5% of device memory");
  EXPECT_EQ(parse_budget("8GiB", "--budget").describe(), "8GiB");
}

TEST(ParseBudget, SharesOfThePeakFloorExactly) {
  // 0.7 and 70% are the same budget: floor(peak * 70 / 100), not one byte less from binary
  // rounding of 0.7.
  for (std::size_t peak : {std::size_t{1000}, std::size_t{123456789}, 7 * GiB + 3}) {
    SCOPED_TRACE(peak);
    const std::size_t pct = parse_budget("70%", "--budget", kReplay).resolve(100 * GiB, peak);
    EXPECT_EQ(parse_budget("0.7", "--budget", kReplay).resolve(100 * GiB, peak), pct);
    EXPECT_EQ(pct, peak * 7 / 10);
  }
}

TEST(ParseBudget, ShareOfAnUnknownPeak) {
  const BudgetSpec b = parse_budget("60%peak", "MEMENTO_BUDGET");
  const std::string msg = config_error([&] { (void)b.resolve(80 * GiB); });
  EXPECT_THAT(msg, HasSubstr("MEMENTO_BUDGET=\"60%peak\" is a share of the unlimited peak, "
                             "which is not known here"));
  EXPECT_THAT(msg, HasSubstr("accepted: a byte size, or a percentage of device memory"));
}

TEST(ParseBudget, BadFractions) {
  for (const BadCase& c : std::vector<BadCase>{{"1.5", "must be in (0, 1]"},
                                               {"0.0", "must be in (0, 1]"},
                                               {"0", "must be in (0, 1]"}}) {
    SCOPED_TRACE(c.text);
    const std::string msg = config_error([&] { (void)parse_budget(c.text, "--budget", kReplay); });
    EXPECT_THAT(msg, HasSubstr(std::string("--budget=\"") + c.text + "\""));
    EXPECT_THAT(msg, HasSubstr(c.reason));
    EXPECT_THAT(msg, HasSubstr("or a fraction of the unlimited peak in (0, 1], e.g. 0.5"));
  }
  // Without the fraction syntax "0.5" is a byte size, and less than one byte.
  EXPECT_THAT(config_error([] { (void)parse_budget("0.5", "--budget", kPeak); }),
              HasSubstr("less than one byte"));
}

TEST(ParseBudget, HintFollowsTheSyntax) {
  EXPECT_THAT(config_error([] { (void)parse_budget("x%", "--budget", kPeak); }),
              HasSubstr("accepted: a percentage of the unlimited peak in (0, 100], e.g. 70% or "
                        "12.5%, or of device memory with 70%device"));
  EXPECT_THAT(config_error([] { (void)parse_budget("x%", "MEMENTO_BUDGET"); }),
              HasSubstr("accepted: a percentage of device memory in (0, 100], e.g. 60% or "
                        "12.5%, or of the unlimited peak with 60%peak"));
}

TEST(ParseBudget, TheEnvironmentReadsABareShareAsDeviceMemory) {
  const Config c = parse_config(env({{"MEMENTO_BUDGET", "60%"}}));
  ASSERT_TRUE(c.budget);
  EXPECT_EQ(c.budget->base, BudgetBase::device);
  EXPECT_EQ(c.budget->source, "MEMENTO_BUDGET");
  // The explicit forms agree with the bare one where they mean the same.
  const Config both =
      parse_config(env({{"MEMENTO_BUDGET", "60%"}, {"MEMENTO_CONF", "budget:60%device"}}));
  ASSERT_TRUE(both.budget);
  EXPECT_EQ(both.budget->resolve(100 * GiB), 60 * GiB);
  EXPECT_THAT(
      config_error([] {
        (void)parse_config(env({{"MEMENTO_BUDGET", "60%"}, {"MEMENTO_CONF", "budget:60%peak"}}));
      }),
      HasSubstr("conflicts with MEMENTO_CONF budget:\"60%peak\""));
}

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
    EXPECT_EQ(b.base, BudgetBase::device);  // MEMENTO_BUDGET's bare share
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
      {"0%", "must be in (0, 100]"},       {"0.0%", "must be in (0, 100]"},
      {"150%", "must be in (0, 100]"},     {"100.01%", "must be in (0, 100]"},
      {"-5%", "must be in (0, 100]"},      {"%", "no number"},
      {"abc%", "malformed number"},        {"1e2%", "malformed number"},
      {".5%", "malformed number"},         {"5.%", "malformed number"},
      {"1.2.3%", "malformed number"},      {"inf%", "malformed number"},
      {"60%%", "neither device nor peak"}, {"60%gpu", "neither device nor peak"},
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

}  // namespace
}  // namespace memento
