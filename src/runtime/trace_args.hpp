// Argument lists of the runtime's trace events.
#pragma once

#include <cstddef>

#include "memento/residency.hpp"
#include "trace/chrome_trace.hpp"

namespace memento {

/// {"tensor": id, "bytes": bytes}.
[[nodiscard]] TraceArgs tensor_trace_args(TensorId id, std::size_t bytes);
/// A step's counts.
[[nodiscard]] TraceArgs step_trace_args(std::size_t evictions, std::size_t recomputes,
                                        std::size_t peak_allocated);

}  // namespace memento
