// Whole-file reads and atomic writes, with errors that name the file.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

namespace memento::files {

/// The bytes of `path`. memento::ConfigError naming `what` (e.g. "device profile"), the
/// file and the reason when it cannot be read.
[[nodiscard]] std::string read(const std::filesystem::path& path, std::string_view what);

/// Writes `text` to `path` atomically: a temporary file beside it, then renamed, so a
/// reader never sees half a file. memento::Error naming `what`, the file and the reason.
void write_atomically(const std::filesystem::path& path, std::string_view text,
                      std::string_view what);

}  // namespace memento::files
