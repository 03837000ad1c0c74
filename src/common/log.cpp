#include "common/log.hpp"

#include <fmt/format.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <mutex>

#include "memento/error.hpp"

namespace memento::log {
namespace {
std::atomic<Level> g_level{Level::warning};

std::mutex& stderr_mutex() noexcept {
  static std::mutex m;
  return m;
}
void write(const char* level, std::string_view message, std::string_view where = {}) noexcept {
  std::lock_guard lock(stderr_mutex());
  if (where.empty()) {
    std::fprintf(stderr, "memento: %s: %.*s\n", level, static_cast<int>(message.size()),
                 message.data());
  } else {
    std::fprintf(stderr, "memento: %s: %.*s (at %.*s)\n", level, static_cast<int>(message.size()),
                 message.data(), static_cast<int>(where.size()), where.data());
  }
}
}  // namespace

Level parse_level(std::string_view text, std::string_view variable) {
  if (text == "error") return Level::error;
  if (text == "warning") return Level::warning;
  if (text == "info") return Level::info;
  if (text == "debug") return Level::debug;
  MEMENTO_FAIL(ConfigError, fmt::format("{}=\"{}\" is not a log level; accepted: {}", variable,
                                        text, kLevelNames));
}

Level level_from_env() {
  const char* value = std::getenv("MEMENTO_LOG_LEVEL");
  if (value == nullptr || *value == '\0') return Level::warning;
  return parse_level(value, "MEMENTO_LOG_LEVEL");
}

void set_level(Level l) noexcept { g_level.store(l, std::memory_order_relaxed); }
Level level() noexcept { return g_level.load(std::memory_order_relaxed); }

void warning(std::string_view message) noexcept {
  if (enabled(Level::warning)) write("warning", message);
}
void error(std::string_view message) noexcept { write("error", message); }

void error(const std::exception& e) noexcept {
  const auto* raised = dynamic_cast<const Error*>(&e);
  // The location is for whoever debugs memento, not for the user who gave a bad value.
  if (raised == nullptr || !enabled(Level::debug) || *raised->file() == '\0') {
    write("error", e.what());
    return;
  }
  try {
    write("error", e.what(), raised->where());
  } catch (...) {  // no memory for the location: the message alone
    write("error", e.what());
  }
}

}  // namespace memento::log
