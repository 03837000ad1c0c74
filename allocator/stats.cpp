#include <fmt/format.h>

#include "memento/allocator_stats.hpp"
#include "memento/bytes.hpp"

namespace memento {

std::string format_stats_table(const AllocatorStats& s) {
  std::string out;
  auto row = [&out](std::string_view name, const std::string& current, const std::string& peak) {
    out += fmt::format("  {:<22} {:>14} {:>14}\n", name, current, peak);
  };
  auto bytes_row = [&](std::string_view name, const StatCounter& c) {
    row(name, format_bytes(c.current), format_bytes(c.peak));
  };
  auto count_row = [&](std::string_view name, std::size_t n) {
    row(name, fmt::format("{}", n), "");
  };
  out += fmt::format("  {:<22} {:>14} {:>14}\n", "metric", "current", "peak");
  row("budget", format_bytes(s.budget), "");
  bytes_row("allocated", s.allocated);
  bytes_row("requested", s.requested);
  bytes_row("reserved", s.reserved);
  bytes_row("active", s.active);
  row("segments", fmt::format("{}", s.segments.current), fmt::format("{}", s.segments.peak));
  row("live blocks", fmt::format("{}", s.live_blocks.current),
      fmt::format("{}", s.live_blocks.peak));
  row("cached free", format_bytes(s.free_bytes), "");
  row("largest free block", format_bytes(s.largest_free_block), "");
  row("fragmentation", fmt::format("{:.1f}%", 100.0 * s.fragmentation()), "");
  count_row("allocations", s.allocations);
  count_row("frees", s.frees);
  count_row("cache hits", s.cache_hits);
  count_row("cross-stream reuses", s.cross_stream_reuses);
  count_row("segment allocs", s.segment_allocs);
  count_row("segment frees", s.segment_frees);
  count_row("pressure calls", s.pressure_calls);
  row("pressure freed", format_bytes(s.pressure_freed), "");
  count_row("stream syncs", s.stream_syncs);
  count_row("stream waits", s.stream_waits);
  count_row("out of memory", s.out_of_memory);
  return out;
}

}  // namespace memento
