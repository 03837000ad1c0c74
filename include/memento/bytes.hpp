// Byte sizes as people write them ("8GiB", "512MB", "1.5G") and as memento prints them
// ("1.50 GiB"). A leaf: every layer may use it.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace memento {

/// Parses a byte count: raw digits ("1048576"), or a number (decimals allowed) followed by a
/// unit, case-insensitive: B; K, KiB, M, MiB, G, GiB, T, TiB (powers of 1024); KB, MB, GB, TB
/// (powers of 1000). Zero, negative, malformed and overflowing values throw ConfigError whose
/// message starts with `what` (e.g. "MEMENTO_HOST_BUDGET").
[[nodiscard]] std::size_t parse_bytes(std::string_view text, std::string_view what);

/// "1.50 GiB"-style formatting with binary units.
[[nodiscard]] std::string format_bytes(std::size_t bytes);

/// The exact text a byte count round-trips through parse_bytes with: "16GiB" when it is a
/// whole number of a binary unit, raw digits otherwise.
[[nodiscard]] std::string exact_bytes_text(std::size_t bytes);

}  // namespace memento
