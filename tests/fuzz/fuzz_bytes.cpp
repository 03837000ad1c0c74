// Fuzz target: byte sizes (memento::parse_bytes, include/memento/bytes.hpp). Any text either
// parses to a positive size or is a ConfigError naming the setting; a size parsed back from
// exact_bytes_text is the same size, and from format_bytes is the same to within the
// rounding of its two decimals.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_common.hpp"
#include "memento/bytes.hpp"
#include "memento/error.hpp"

namespace {

using memento::ConfigError;
using memento::exact_bytes_text;
using memento::format_bytes;
using memento::parse_bytes;

void check_round_trips(std::size_t bytes) {
  const std::string exact = exact_bytes_text(bytes);
  const std::size_t again = parse_bytes(exact, "exact_bytes_text");
  MEMENTO_FUZZ_CHECK(again == bytes, exact + " reads back as " + std::to_string(again) + ", not " +
                                         std::to_string(bytes));

  // "1.50 GiB": two decimals of a binary unit, within half a hundredth of the unit (and the
  // double's own rounding). parse_bytes reads units up to TiB; format_bytes goes on to PiB
  // and EiB, which are display only.
  const std::string shown = format_bytes(bytes);
  if (shown.ends_with("PiB") || shown.ends_with("EiB")) return;
  const std::size_t read = parse_bytes(shown, "format_bytes");
  const double unit = shown.ends_with("TiB")   ? 0x1p40
                      : shown.ends_with("GiB") ? 0x1p30
                      : shown.ends_with("MiB") ? 0x1p20
                      : shown.ends_with("KiB") ? 0x1p10
                                               : 1.0;
  const double error = std::fabs(static_cast<double>(read) - static_cast<double>(bytes));
  MEMENTO_FUZZ_CHECK(error <= unit * 0.0051 + 1, shown + " reads back as " + std::to_string(read) +
                                                     ", too far from " + std::to_string(bytes));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  std::size_t bytes = 0;
  try {
    bytes = parse_bytes(text, "MEMENTO_HOST_BUDGET");
  } catch (const ConfigError& e) {
    const std::string_view message = e.what();
    MEMENTO_FUZZ_CHECK(message.starts_with("MEMENTO_HOST_BUDGET=\""),
                       "the message names the setting: " + std::string(message));
    MEMENTO_FUZZ_CHECK(message.find("accepted:") != std::string_view::npos,
                       "the message says what is accepted: " + std::string(message));
    // The same bytes as a size: exact_bytes_text and format_bytes of any value round-trip.
    if (size >= sizeof(std::size_t)) {
      std::size_t raw = 0;
      for (std::size_t i = 0; i < sizeof raw; ++i) raw = raw << 8 | data[i];
      if (raw > 0) check_round_trips(raw);
    }
    return 0;
  }
  MEMENTO_FUZZ_CHECK(bytes > 0, "a parsed size is positive");
  check_round_trips(bytes);
  return 0;
}
