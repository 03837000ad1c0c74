// The spans of a Chrome trace (the runtime's own, or one recorded on a GPU), read once:
// what calibrate times kernels from and what --fit fits recorded runs to.
#pragma once

#include <filesystem>
#include <functional>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string_view>
#include <vector>

#include "calibrate/timing_backend.hpp"

namespace memento::calibrate {

class TraceSpans {
 public:
  /// Reads `path`: a Chrome trace in the object format ("traceEvents") or the array format.
  /// ConfigError naming the file when it cannot be read, is not JSON or holds no event array
  /// (an empty one is a trace without spans).
  explicit TraceSpans(std::filesystem::path path);
  ~TraceSpans();
  TraceSpans(const TraceSpans&) = delete;
  TraceSpans& operator=(const TraceSpans&) = delete;

  [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }

  /// Calls `each(event, start, seconds)` (seconds on the trace's clock) on every complete
  /// span ("ph": "X") of `category`; a span whose fields have the wrong types is a
  /// ConfigError naming the trace and the event.
  using Each = std::function<void(const nlohmann::json& event, double start, double seconds)>;
  void for_each(std::string_view category, const Each& each) const;

  /// The kernel spans (category "kernel", as the runtime's trace writes them) that start at
  /// or after `from_seconds`.
  [[nodiscard]] std::vector<KernelSample> kernels(double from_seconds = 0) const;
  /// Where the first step ends (its first "step" span); 0 when there are no step spans.
  [[nodiscard]] double first_step_end() const;

 private:
  std::filesystem::path path_;
  std::unique_ptr<const nlohmann::json> events_;
};

}  // namespace memento::calibrate
