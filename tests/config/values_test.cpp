// parse_bytes, format_bytes and parse_device (budgets: budget_test.cpp). Every error case checks
// the exception type and that the message names the variable, the value and what is accepted.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstddef>
#include <cstdlib>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "config/config_testing.hpp"
#include "memento/config.hpp"
#include "memento/error.hpp"

namespace memento {
namespace {

using namespace config_testing;

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

// Control characters in a value are escaped: a NUL would cut the message short (what() is a C
// string) before what is accepted, a newline would break it (found by fuzz_bytes).
TEST(ParseBytes, MessageEscapesControlCharacters) {
  const std::string msg =
      config_error([] { (void)parse_bytes(std::string("8\0G\niB", 6), "MEMENTO_HOST_BUDGET"); });
  EXPECT_THAT(msg, HasSubstr("MEMENTO_HOST_BUDGET=\"8\\x00G\\x0aiB\" is not a byte size: unknown "
                             "unit \"\\x00G\\x0aiB\"; accepted: a positive number"));
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

}  // namespace
}  // namespace memento
