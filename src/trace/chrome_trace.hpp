// A Chrome Trace Event Format writer, the "JSON Object Format" that Perfetto (ui.perfetto.dev)
// and chrome://tracing open:
//   {"traceEvents": [...], "displayTimeUnit": "ms", "otherData": {...}}
// Events are kept in memory (at most max_events; the rest are counted in otherData as
// dropped_events, and a warning is logged once) and written, sorted by time, by flush() or
// the destructor. Times are seconds on the caller's clock (Backend::now(): virtual on sim)
// and are written as microseconds. Every member function is thread-safe.
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace memento {

/// One argument value of a trace event: a number, a bool or a string. Integers keep their
/// exact value (a byte count is not rounded through a double).
struct TraceValue {
  using Variant = std::variant<bool, std::int64_t, std::uint64_t, double, std::string>;
  Variant value;

  // Implicit, so that args read {{"bytes", n}, {"tensor", "x"}}.
  template <std::integral T>
  TraceValue(T v) : value(integral(v)) {}
  TraceValue(double v) : value(v) {}
  TraceValue(std::string v) : value(std::move(v)) {}
  TraceValue(std::string_view v) : value(std::string(v)) {}
  TraceValue(const char* v) : value(std::string(v)) {}

 private:
  template <std::integral T>
  static Variant integral(T v) {
    if constexpr (std::same_as<T, bool>) {
      return Variant(std::in_place_type<bool>, v);
    } else if constexpr (std::signed_integral<T>) {
      return Variant(std::in_place_type<std::int64_t>, static_cast<std::int64_t>(v));
    } else {
      return Variant(std::in_place_type<std::uint64_t>, static_cast<std::uint64_t>(v));
    }
  }
};

/// The "args" of an event, written as a JSON object (a repeated key: the last one wins).
using TraceArgs = std::vector<std::pair<std::string, TraceValue>>;

class ChromeTrace {
 public:
  using Args = TraceArgs;
  static constexpr std::size_t kDefaultMaxEvents = 1'000'000;

  /// Writes to `path` on flush() and on destruction. Nothing is opened before then.
  explicit ChromeTrace(std::string path, std::size_t max_events = kDefaultMaxEvents);
  /// Writes the file unless a flush() already wrote every event; a failure is logged, not
  /// thrown.
  ~ChromeTrace();
  ChromeTrace(const ChromeTrace&) = delete;
  ChromeTrace& operator=(const ChromeTrace&) = delete;

  /// A span ("ph":"X") on the timeline `track` (e.g. "compute stream", "d2h copies",
  /// "runtime"); each distinct track becomes a named thread in the viewer. LogicError when
  /// a time is not finite or the duration is negative.
  void complete(std::string_view name, std::string_view category, std::string_view track,
                double start_s, double duration_s, Args args = {});

  /// A point in time ("ph":"i", thread scope) on `track`.
  void instant(std::string_view name, std::string_view category, std::string_view track,
               double time_s, Args args = {});

  /// A sample of the counter `name`'s series ("ph":"C"), e.g.
  /// counter("device memory", t, "allocated", bytes). Series of one name share a chart.
  void counter(std::string_view name, double time_s, std::string_view series, double value);

  /// An entry of "otherData" (the device, the policy, ...); a repeated key replaces it.
  void set_other_data(std::string_view key, TraceValue value);

  /// Writes every event so far to the file: to PATH.tmp, then renamed over PATH, so a reader
  /// never sees half a file. memento::Error naming the path and the reason when it cannot.
  /// The events stay in memory: a later flush writes them again, with the newer ones.
  void flush();

  [[nodiscard]] const std::string& path() const noexcept { return path_; }
  /// Events kept (metadata excluded), and those dropped past max_events.
  [[nodiscard]] std::size_t size() const;
  [[nodiscard]] std::size_t dropped() const;

 private:
  struct Event {
    double ts_us;
    double dur_us;  // "X" only
    std::uint32_t name;
    std::uint32_t category;
    std::uint32_t tid;  // 0 for counters
    char phase;         // 'X', 'i' or 'C'
    Args args;
  };

  // All under mutex_.
  bool admit();  // false (and counted) past max_events
  std::uint32_t intern(std::string_view s);
  std::uint32_t track_tid(std::string_view track);
  void write_locked();

  const std::string path_;
  const std::size_t max_events_;
  mutable std::mutex mutex_;
  std::vector<Event> events_;
  std::size_t dropped_ = 0;
  std::vector<std::string> strings_;  // names and categories, by id
  std::map<std::string, std::uint32_t, std::less<>> string_ids_;
  std::vector<std::string> tracks_;  // by tid - 1, in the order first seen
  std::map<std::string, std::uint32_t, std::less<>> tids_;
  std::vector<std::pair<std::string, TraceValue>> other_data_;
  bool written_ = false;  // a flush wrote every event recorded so far
};

}  // namespace memento
