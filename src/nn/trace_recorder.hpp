// Records one training step as a DTR-style operator log (JSON Lines; the format `memento
// replay` reads, issue 6): constants, operator calls with their arguments, results, sizes
// and roofline times, in-place updates, and releases exactly where the tape frees memory,
// so the live bytes of the log follow the run's allocations. The Tape reports to it (see
// Tape::set_recorder); without a recorder nothing is recorded and nothing is paid.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "memento/device_profile.hpp"
#include "memento/kernel.hpp"
#include "memento/residency.hpp"

namespace memento::nn {

/// What the log names: a tensor the runtime tracks ("t<id>": parameters, inputs,
/// activations) or a plain allocator block ("g<n>" gradients, "s<n>" optimizer state).
struct TraceRef {
  TensorId tensor = 0;
  const void* block = nullptr;
  [[nodiscard]] static TraceRef of(TensorId id) noexcept { return {id, nullptr}; }
  [[nodiscard]] static TraceRef of(const void* block) noexcept { return {0, block}; }
};

/// A new result of a recorded call: fresh storage of `bytes` (ALIAS -1). `prefix` names a
/// block ('g' or 's'); tensors are named by their id.
struct TraceResult {
  TraceRef ref;
  std::size_t bytes = 0;
  char prefix = 'g';
};

class TraceRecorder {
 public:
  /// TIME of each record: the sum over its kernels of whole_nanoseconds(roofline_seconds())
  /// with `profile`'s rates, the sim backend's model of those kernels on that device.
  explicit TraceRecorder(const DeviceProfile& profile);

  /// `{"INSTRUCTION":"ANNOTATE","ANNOTATION":"START"}`; forgets anything recorded before.
  void start();
  /// `ANNOTATE BACKWARD`.
  void backward();
  /// A parameter, an input, or state that exists before the step: CONSTANT + MEMORY.
  void constant(TraceRef ref, std::size_t bytes, char prefix = 't');
  /// A kernel whose time is charged to the next call or mutation (zeroing a buffer that
  /// the next kernel accumulates into: one step of the log, two launches of the run).
  void charge(const KernelCost& cost);
  /// CALL `name` reading `args` into fresh `results` (each followed by MEMORY and ALIAS -1),
  /// TIME the kernel `cost` plus whatever was charged.
  void call(std::string_view name, std::span<const TraceRef> args,
            std::span<const TraceResult> results, const KernelCost& cost);
  /// MUTATE `name` over `args`, updating args[i] in place for each i in `mutated`. TIME is
  /// the charged time plus `cost` (pass no cost when a call already carried the kernel).
  void mutate(std::string_view name, std::span<const TraceRef> args,
              std::span<const std::size_t> mutated, const KernelCost& cost = {});
  /// RELEASE: the memory went back. A reference made before start() is ignored (it is not
  /// in the log).
  void release(TraceRef ref);
  /// Whether `ref` is in the log (and not released).
  [[nodiscard]] bool knows(TraceRef ref) const;

  /// The log so far, one JSON object per line.
  [[nodiscard]] const std::string& text() const noexcept { return text_; }
  /// Lines of the log (START included); the sum of TIME; the peak of live bytes, counting
  /// a MUTATE as in place (as the run updates; see the design note).
  [[nodiscard]] std::size_t lines() const noexcept { return lines_; }
  [[nodiscard]] std::int64_t total_nanoseconds() const noexcept { return total_ns_; }
  [[nodiscard]] std::size_t peak_bytes() const noexcept { return peak_; }
  /// Writes the log to `path` atomically (a temporary file beside it, then renamed).
  /// memento::Error naming the file and the reason when it cannot be written.
  void write(const std::filesystem::path& path) const;

 private:
  struct Entry {
    std::string name;
    std::size_t bytes = 0;
  };
  [[nodiscard]] const Entry& at(TraceRef ref) const;
  const std::string& define(TraceRef ref, std::size_t bytes, char prefix);
  [[nodiscard]] std::int64_t take_time(const KernelCost& cost);
  void emit(const std::string& line);

  DeviceProfile profile_;
  std::string text_;
  std::unordered_map<TensorId, Entry> tensors_;
  std::unordered_map<const void*, Entry> blocks_;
  std::unordered_map<char, std::size_t> next_block_;  // by prefix: g0, g1, ..., s0, ...
  std::int64_t charged_ns_ = 0;
  std::int64_t total_ns_ = 0;
  std::size_t lines_ = 0;
  std::size_t live_ = 0;
  std::size_t peak_ = 0;
};

}  // namespace memento::nn
