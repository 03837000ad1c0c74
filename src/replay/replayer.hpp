// Runs a parsed operator log through memento's real runtime and allocator on the sim
// backend: constants become never-evicted tensors, each fresh CALL/MUTATE result a
// computed tensor whose recipe reruns the recorded operator at its recorded time, and a
// tensor whose references reach zero is freed. The policy then evicts under the budget
// exactly as it would in training.
#pragma once

#include <cstddef>
#include <optional>
#include <string>

#include "memento/device_profile.hpp"
#include "replay/replay_log.hpp"

namespace memento::replay {

enum class MemoryModel {
  allocator,  ///< memento's caching allocator: rounding, caching and fragmentation count
  counted,    ///< live tensor bytes only (an exact-size segment per tensor)
};

[[nodiscard]] const char* to_string(MemoryModel model) noexcept;

struct ReplayOptions {
  std::string policy = "dtr";
  std::size_t budget = 0;  ///< bytes; 0: none (the device capacity)
  MemoryModel memory_model = MemoryModel::counted;
  /// The sim device. Its launch latency is ignored: the recorded TIMEs are device times
  /// that already include whatever the original run lost between kernels.
  DeviceProfile profile;
  std::size_t host_budget = std::size_t{64} << 30;  ///< pinned host memory for offloads
  /// A run whose recompute seconds exceed this many times the log's total compute is
  /// thrashing: it is stopped and reported as such.
  double thrash_factor = 2.0;
};

struct ReplayResult {
  bool fits = false;                  ///< ran to the end within the budget, without thrashing
  bool thrashed = false;              ///< stopped: recompute time exceeded thrash_factor x baseline
  std::string error;                  ///< the OutOfMemory message, or why it was stopped
  std::size_t instructions_done = 0;  ///< of the lowered program
  double seconds = 0;                 ///< the replay's total time on the sim clock (fits only)
  double baseline_seconds = 0;        ///< the log's sum of recorded TIMEs
  std::optional<double> slowdown;     ///< seconds / baseline_seconds (fits only)
  std::size_t peak_bytes = 0;         ///< peak reserved device bytes
  std::size_t peak_allocated = 0;     ///< peak allocated bytes (blocks handed out)
  std::size_t evictions = 0;          ///< discards + offloads
  std::size_t recomputes = 0;
  double recompute_seconds = 0;
  std::size_t bytes_offloaded = 0;
  std::optional<double> stall_s;  ///< compute stream waiting on copies
};

/// Replays `log` once, on a fresh sim backend, allocator and runtime. OutOfMemory and
/// thrashing are outcomes in the result, not exceptions; a bad policy name or a budget
/// above the profile's capacity is a ConfigError.
[[nodiscard]] ReplayResult run_replay(const ReplayLog& log, const ReplayOptions& options);

}  // namespace memento::replay
