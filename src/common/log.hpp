// Minimal diagnostics to stderr for paths that must not throw (destructors, frees).
#pragma once

#include <string_view>

namespace memento::log {

/// Writes "memento: warning: <message>" to stderr. Never throws.
void warning(std::string_view message) noexcept;

/// Writes "memento: error: <message>" to stderr. Never throws.
void error(std::string_view message) noexcept;

}  // namespace memento::log
