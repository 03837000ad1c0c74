// Minimal diagnostics to stderr for paths that must not throw (destructors, frees), and the
// level that decides how much is said (MEMENTO_LOG_LEVEL for the CLI).
#pragma once

#include <exception>
#include <string_view>

namespace memento::log {

/// How much to say, least first: each level includes the ones before it.
enum class Level { error, warning, info, debug };

/// The accepted spellings, as a user reads them: "error, warning, info, debug".
inline constexpr std::string_view kLevelNames = "error, warning, info, debug";

/// `text` as a level; ConfigError naming `variable`, the value and the accepted levels
/// otherwise.
[[nodiscard]] Level parse_level(std::string_view text, std::string_view variable);

/// MEMENTO_LOG_LEVEL as a level: warning when unset or empty; ConfigError when malformed.
[[nodiscard]] Level level_from_env();

/// The process-wide level (warning until set).
void set_level(Level level) noexcept;
[[nodiscard]] Level level() noexcept;
[[nodiscard]] inline bool enabled(Level l) noexcept { return l <= level(); }

/// Writes "memento: warning: <message>" to stderr, unless the level is error. Never throws.
void warning(std::string_view message) noexcept;

/// Writes "memento: error: <message>" to stderr. Never throws.
void error(std::string_view message) noexcept;

/// Writes "memento: error: <what()>" to stderr; at level debug a memento::Error's location
/// follows: "memento: error: <what()> (at src/config/bytes.cpp:69)". Never throws.
void error(const std::exception& e) noexcept;

}  // namespace memento::log
