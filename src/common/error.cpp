#include "memento/error.hpp"

#include <fmt/format.h>

#include "memento/config.hpp"

namespace memento {

std::string describe(const OomFigures& f) {
  return fmt::format(
      "out of memory on {}: cannot allocate {} ({} bytes) on stream {} within the budget of {} "
      "({} bytes): {}. Allocated {} in {} live blocks, reserved {} in {} segments ({} cached), "
      "unevictable {}; eviction freed {} for this request",
      f.device, format_bytes(f.requested), f.requested, f.stream, format_bytes(f.budget), f.budget,
      f.reason, format_bytes(f.allocated), f.live_blocks, format_bytes(f.reserved), f.segments,
      format_bytes(f.cached), format_bytes(f.unevictable), format_bytes(f.freed_by_eviction));
}

// The base, and so the message, is built before the member takes the figures.
OutOfMemory::OutOfMemory(OomFigures figures, const char* file, int line)
    : Error(describe(figures), file, line),
      figures_(std::make_shared<const OomFigures>(std::move(figures))) {}

}  // namespace memento
