#include "common/log.hpp"

#include <cstdio>
#include <mutex>

namespace memento::log {
namespace {
std::mutex& stderr_mutex() noexcept {
  static std::mutex m;
  return m;
}
void write(const char* level, std::string_view message) noexcept {
  std::lock_guard lock(stderr_mutex());
  std::fprintf(stderr, "memento: %s: %.*s\n", level, static_cast<int>(message.size()),
               message.data());
}
}  // namespace

void warning(std::string_view message) noexcept { write("warning", message); }
void error(std::string_view message) noexcept { write("error", message); }

}  // namespace memento::log
