// `memento demo`: a transformer-shaped allocation trace replayed through the caching
// allocator alone (no runtime, so nothing is evicted).
#pragma once

#include <cstddef>
#include <optional>
#include <string>

#include "cli/environment.hpp"

namespace memento::cli {

struct DemoOptions {
  std::string device = "host:1GiB";   // MEMENTO_DEVICE syntax
  std::optional<std::string> budget;  // MEMENTO_BUDGET syntax; none: the device capacity
  std::size_t steps = 3;
  std::size_t layers = 6;
  std::size_t batch = 4;
  std::size_t seq = 256;
  std::size_t hidden = 256;
  OptionSources sources;
};

/// Replays a transformer-shaped allocation trace through the caching allocator, prints
/// progress to stderr and the statistics table to stdout. Returns the process exit code.
int run_demo(const DemoOptions& options);

}  // namespace memento::cli
