// Small text helpers shared by the parsers of byte sizes, budgets, devices and settings.
#pragma once

#include <fmt/format.h>

#include <cctype>
#include <string>
#include <string_view>

#include "memento/error.hpp"

namespace memento::text {

inline bool is_space(char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; }
inline bool is_digit(char c) { return c >= '0' && c <= '9'; }

inline std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

inline std::string_view trim(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

/// `s` with its control characters (a NUL, a newline, an escape sequence) written as \xNN,
/// so that a message quoting it is all there and prints as one line.
inline std::string printable(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f)
      out += fmt::format("\\x{:02x}", u);
    else
      out += c;
  }
  return out;
}

/// How a value is quoted in messages: NAME="value" for a variable (it reads like the shell
/// assignment), `MEMENTO_CONF budget:"value"` for an item of MEMENTO_CONF (a `what` with a
/// space in it). Control characters in the value are escaped (printable).
inline std::string setting(std::string_view what, std::string_view text) {
  const char sep = what.find(' ') == std::string_view::npos ? '=' : ':';
  return fmt::format("{}{}\"{}\"", what, sep, printable(text));
}

/// Rethrows a ConfigError from a nested parser with more context after its message; the
/// original location is kept: it points at the check that failed.
[[noreturn]] inline void rethrow_with(const ConfigError& e, std::string_view suffix) {
  throw ConfigError(fmt::format("{}; {}", e.what(), suffix), e.file(), e.line());
}

}  // namespace memento::text
