// What an error carries: the message a user reads (what(), no source path), the location
// for debugging (where()), and for the allocator's OutOfMemory the figures as fields that
// equal its stats at the failure and that its message is built from; and MEMENTO_LOG_LEVEL,
// which decides whether the CLI shows the location.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <limits>
#include <regex>
#include <string>

#include "backend_types.hpp"
#include "common/log.hpp"
#include "memento/caching_allocator.hpp"
#include "memento/config.hpp"
#include "memento/error.hpp"

namespace memento {
namespace {

constexpr std::size_t MiB = std::size_t{1} << 20;

// A source path in a message: the build machine's directories or a file:line.
bool has_source_path(const std::string& text) {
  static const std::regex kPath(R"(\.(cpp|hpp|cu|cuh):[0-9]+|/src/|/allocator/|/include/)");
  return std::regex_search(text, kPath);
}

TEST(Error, WhatIsTheMessageAndWhereIsTheProjectRelativeLocation) {
  int line = 0;
  try {
    line = __LINE__ + 1;
    MEMENTO_FAIL(ConfigError, "the value is bad");
  } catch (const ConfigError& e) {
    EXPECT_STREQ(e.what(), "the value is bad");
    EXPECT_STREQ(e.file(), "tests/allocator/errors_test.cpp");
    EXPECT_EQ(e.line(), line);
    EXPECT_EQ(e.where(), "tests/allocator/errors_test.cpp:" + std::to_string(line));
  }
  try {
    line = __LINE__ + 1;
    MEMENTO_EXPECTS(1 + 1 == 3, std::string("arithmetic"));
  } catch (const LogicError& e) {
    EXPECT_STREQ(e.what(), "arithmetic");
    EXPECT_EQ(e.where(), "tests/allocator/errors_test.cpp:" + std::to_string(line));
  }
}

TEST(Error, ConstructedWithoutALocationHasNone) {
  const BackendError e("no device");
  EXPECT_STREQ(e.what(), "no device");
  EXPECT_STREQ(e.file(), "");
  EXPECT_EQ(e.line(), 0);
  EXPECT_EQ(e.where(), "");
}

TEST(Error, RaisedInTheLibraryNamesItsFileRelativeToTheProject) {
  try {
    (void)parse_bytes("12XB", "--budget");
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()).rfind("--budget=\"12XB\"", 0), 0u) << e.what();
    EXPECT_FALSE(has_source_path(e.what())) << e.what();
    EXPECT_TRUE(std::regex_match(e.where(), std::regex(R"(src/common/[a-z_]+\.cpp:[0-9]+)")))
        << e.where();
  }
}

TEST(Error, ProjectPathStripsTheRootElseKeepsTheBaseName) {
  EXPECT_STREQ(detail::project_path("/elsewhere/deep/dir/thing.cpp"), "thing.cpp");
  EXPECT_STREQ(detail::project_path("thing.cpp"), "thing.cpp");
  EXPECT_STREQ(detail::project_path(__FILE__), "tests/allocator/errors_test.cpp");
}

TEST(LogLevel, TheFourLevelsAndABadValueNamingThem) {
  EXPECT_EQ(log::parse_level("error", "MEMENTO_LOG_LEVEL"), log::Level::error);
  EXPECT_EQ(log::parse_level("warning", "MEMENTO_LOG_LEVEL"), log::Level::warning);
  EXPECT_EQ(log::parse_level("info", "MEMENTO_LOG_LEVEL"), log::Level::info);
  EXPECT_EQ(log::parse_level("debug", "MEMENTO_LOG_LEVEL"), log::Level::debug);
  for (const char* bad : {"loud", "DEBUG", " debug", "3"}) {
    try {
      (void)log::parse_level(bad, "MEMENTO_LOG_LEVEL");
      ADD_FAILURE() << bad << " was accepted";
    } catch (const ConfigError& e) {
      EXPECT_EQ(std::string(e.what()),
                fmt::format("MEMENTO_LOG_LEVEL=\"{}\" is not a log level; accepted: error, "
                            "warning, info, debug",
                            bad));
    }
  }
}

TEST(LogLevel, AnErrorShowsItsLocationOnlyAtDebug) {
  const log::Level saved = log::level();
  const ConfigError e("the value is bad", "src/config/bytes.cpp", 69);
  log::set_level(log::Level::warning);
  ::testing::internal::CaptureStderr();
  log::error(e);
  EXPECT_EQ(::testing::internal::GetCapturedStderr(), "memento: error: the value is bad\n");
  log::set_level(log::Level::debug);
  ::testing::internal::CaptureStderr();
  log::error(e);
  log::error(std::runtime_error("not memento's"));
  log::error(ConfigError("no location"));
  EXPECT_EQ(::testing::internal::GetCapturedStderr(),
            "memento: error: the value is bad (at src/config/bytes.cpp:69)\n"
            "memento: error: not memento's\n"
            "memento: error: no location\n");
  log::set_level(log::Level::error);  // warnings are silenced, errors are not
  ::testing::internal::CaptureStderr();
  log::warning("quiet");
  log::error("loud");
  EXPECT_EQ(::testing::internal::GetCapturedStderr(), "memento: error: loud\n");
  log::set_level(saved);
}

template <typename T>
class OutOfMemoryFigures : public testing::BackendTest<T> {};

TYPED_TEST_SUITE(OutOfMemoryFigures, testing::AllBackendTypes, testing::BackendTypeNames);

TYPED_TEST(OutOfMemoryFigures, EqualTheAllocatorsStatsAndMakeTheMessage) {
  CachingAllocator alloc(*this->backend_, {.budget = 8 * MiB});
  void* a = alloc.allocate(6 * MiB);
  alloc.set_evictable_bytes_probe([] { return std::size_t{2} * MiB; });
  int calls = 0;
  alloc.add_pressure_handler([&](std::size_t, Stream) -> std::size_t {
    ++calls;
    return 0;
  });
  try {
    (void)alloc.allocate(4 * MiB);
    FAIL() << "expected OutOfMemory";
  } catch (const OutOfMemory& e) {
    const AllocatorStats s = alloc.stats();  // nothing changed since the throw
    const OomFigures* f = e.figures();
    ASSERT_NE(f, nullptr);
    EXPECT_EQ(f->device, this->backend_->info().name);
    EXPECT_EQ(f->requested, 4 * MiB);
    EXPECT_EQ(f->stream, 0u);
    EXPECT_EQ(f->budget, 8 * MiB);
    EXPECT_EQ(f->budget, s.budget);
    EXPECT_EQ(f->allocated, s.allocated.current);
    EXPECT_EQ(f->allocated, 6 * MiB);
    EXPECT_EQ(f->live_blocks, s.live_blocks.current);
    EXPECT_EQ(f->reserved, s.reserved.current);
    EXPECT_EQ(f->segments, s.segments.current);
    EXPECT_EQ(f->cached, s.reserved.current - s.active.current);
    EXPECT_EQ(f->unevictable, 4 * MiB);  // allocated less what the probe says can go
    EXPECT_EQ(f->freed_by_eviction, 0u);
    EXPECT_EQ(f->reason, "nothing left to evict");
    EXPECT_EQ(f->shortfall(), f->reserved + f->requested - f->budget);
    EXPECT_EQ(calls, 1);

    const std::string msg = e.what();
    EXPECT_EQ(msg, describe(*f));
    EXPECT_FALSE(has_source_path(msg)) << msg;
    const std::string parts[] = {
        "out of memory on " + f->device,
        "cannot allocate 4.00 MiB (4194304 bytes)",
        "on stream 0",
        "budget of 8.00 MiB (8388608 bytes): nothing left to evict",
        "Allocated 6.00 MiB in " + std::to_string(f->live_blocks) + " live blocks",
        "reserved " + format_bytes(f->reserved) + " in " + std::to_string(f->segments) +
            " segments (" + format_bytes(f->cached) + " cached)",
        "unevictable 4.00 MiB",
        "eviction freed 0 B for this request"};
    for (const std::string& part : parts)
      EXPECT_NE(msg.find(part), std::string::npos) << "missing '" << part << "' in: " << msg;
    EXPECT_EQ(e.where().rfind("allocator/", 0), 0u) << e.where();
  }
  EXPECT_EQ(alloc.stats().out_of_memory, 1u);
  alloc.deallocate(a);
}

TYPED_TEST(OutOfMemoryFigures, CountWhatEvictionFreedForTheRequest) {
  CachingAllocator alloc(*this->backend_, {.budget = 4 * MiB});
  void* a = alloc.allocate(4 * MiB);
  std::size_t claimed = 0;
  alloc.add_pressure_handler([&](std::size_t, Stream) -> std::size_t {
    claimed += 1024;  // claims progress that never makes room: the rounds run out
    return 1024;
  });
  try {
    (void)alloc.allocate(MiB);
    FAIL() << "expected OutOfMemory";
  } catch (const OutOfMemory& e) {
    ASSERT_NE(e.figures(), nullptr);
    EXPECT_EQ(e.figures()->freed_by_eviction, claimed);
    EXPECT_EQ(e.figures()->reason, "eviction did not make room");
    EXPECT_EQ(e.figures()->unevictable, 4 * MiB);  // no probe: every live byte counts
    EXPECT_NE(std::string(e.what()).find("eviction freed " + format_bytes(claimed)),
              std::string::npos)
        << e.what();
  }
  alloc.deallocate(a);
}

TYPED_TEST(OutOfMemoryFigures, AnAbsurdRequestDoesNotWrapTheShortfall) {
  CachingAllocator alloc(*this->backend_, {.budget = 8 * MiB});
  void* a = alloc.allocate(MiB);
  try {
    (void)alloc.allocate(std::numeric_limits<std::size_t>::max());
    FAIL() << "expected OutOfMemory";
  } catch (const OutOfMemory& e) {
    ASSERT_NE(e.figures(), nullptr);
    EXPECT_EQ(e.figures()->reason, "the request alone exceeds the budget");
    const OomFigures& f = *e.figures();
    EXPECT_EQ(f.shortfall(), std::numeric_limits<std::size_t>::max() - (f.budget - f.reserved));
  }
  // Reserved above the budget (the budget was lowered under live blocks): it saturates.
  EXPECT_EQ((OomFigures{.requested = std::numeric_limits<std::size_t>::max(),
                        .budget = MiB,
                        .reserved = 2 * MiB})
                .shortfall(),
            std::numeric_limits<std::size_t>::max());
  EXPECT_EQ((OomFigures{.requested = MiB, .budget = MiB, .reserved = 2 * MiB}).shortfall(),
            2 * MiB);
  EXPECT_EQ((OomFigures{.requested = MiB, .budget = 4 * MiB, .reserved = 2 * MiB}).shortfall(), 0u);
  alloc.deallocate(a);
}

TEST(OutOfMemory, WithoutFiguresAndCopied) {
  try {
    MEMENTO_FAIL(OutOfMemory, "evictions keep undoing each other");
  } catch (const OutOfMemory& e) {
    EXPECT_EQ(e.figures(), nullptr);
    EXPECT_STREQ(e.what(), "evictions keep undoing each other");
  }
  const OutOfMemory original(OomFigures{.requested = 3, .budget = 2, .reserved = 1});
  const OutOfMemory copy = original;  // NOLINT: the copy is the point
  ASSERT_NE(copy.figures(), nullptr);
  EXPECT_EQ(copy.figures()->shortfall(), 2u);
  EXPECT_STREQ(copy.what(), original.what());
  EXPECT_EQ(copy.where(), "");
}

}  // namespace
}  // namespace memento
