// A backend decorator that injects failures into any backend, for testing what the layers
// above do when a copy, an allocation, an event or a kernel fails: synchronously (the call
// throws or refuses) or asynchronously (the work is dropped and the next synchronize or
// event query that covers it reports AsyncBackendError, once, as a GPU would).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "memento/backend.hpp"

namespace memento {

/// The backend calls a fault can be injected into.
enum class FaultSite {
  segment_allocation,  ///< allocate_segment
  pinned_allocation,   ///< allocate_pinned
  copy,                ///< copy_async
  event_record,        ///< record
  event_wait,          ///< wait (stream on event)
  kernel_launch,       ///< launch
  host_launch,         ///< launch_host
};
inline constexpr std::size_t kFaultSites = 7;

enum class FaultMode {
  refuse,  ///< an allocation returns nullptr (out of memory): allocations only
  throws,  ///< the call throws BackendError and does nothing
  async,   ///< the call returns; its work fails on the stream (a copy or kernel does not
           ///< run; a record or wait takes effect but marks the stream failed) and the next
           ///< synchronize of that stream, or of an event recorded after it, reports it
};

const char* to_string(FaultSite site) noexcept;
const char* to_string(FaultMode mode) noexcept;

/// Fail the `nth` call (from 1) to `site` in the given way.
struct Fault {
  FaultSite site = FaultSite::copy;
  std::size_t nth = 1;
  FaultMode mode = FaultMode::throws;
};

/// `count` faults drawn from `seed` (deterministic for a seed): a site among those with
/// calls[site] > 0 (the calls a fault-free run made, FaultInjectingBackend::calls), a call
/// number in [1, calls[site]], and a mode the site takes. Empty when no site has calls.
[[nodiscard]] std::vector<Fault> random_faults(std::uint64_t seed, std::size_t count,
                                               const std::array<std::size_t, kFaultSites>& calls);

class FaultInjectingBackend final : public Backend {
 public:
  /// LogicError for a fault the site cannot take (refuse outside allocations, async on an
  /// allocation) or an nth of 0.
  FaultInjectingBackend(Backend& inner, std::vector<Fault> faults);

  /// Stops injecting (failures already injected are still reported).
  void disarm();
  /// Faults injected so far, and a line per fault saying what failed where.
  [[nodiscard]] std::size_t injected() const;
  [[nodiscard]] std::vector<std::string> injected_log() const;
  /// Calls made to a site so far.
  [[nodiscard]] std::size_t calls(FaultSite site) const;
  /// Asynchronous failures injected and not yet reported by a synchronize or query.
  [[nodiscard]] std::size_t unreported() const;

  [[nodiscard]] const DeviceInfo& info() const noexcept override { return inner_.info(); }
  [[nodiscard]] void* allocate_segment(std::size_t bytes) override;
  void free_segment(void* ptr, std::size_t bytes) noexcept override;
  [[nodiscard]] std::size_t segment_bytes() const noexcept override;
  [[nodiscard]] void* allocate_pinned(std::size_t bytes, int numa_node) override;
  void free_pinned(void* ptr, std::size_t bytes) noexcept override;
  [[nodiscard]] Stream create_stream() override;
  [[nodiscard]] void* native_handle(Stream stream) const override;
  [[nodiscard]] Stream stream_from_native(void* handle) override;
  void synchronize(Stream stream) override;
  void synchronize_all() override;
  [[nodiscard]] Event create_event() override;
  void destroy_event(Event event) noexcept override;
  void record(Event event, Stream stream) override;
  void wait(Stream stream, Event event) override;
  [[nodiscard]] bool query(Event event) override;
  void synchronize(Event event) override;
  void copy_async(void* dst, const void* src, std::size_t bytes, CopyKind kind,
                  Stream stream) override;
  void launch(Stream stream, Kernel kernel) override;
  void launch_host(Stream stream, HostTask task) override;
  [[nodiscard]] double now() const override { return inner_.now(); }
  void host_work(double seconds) override { inner_.host_work(seconds); }
  [[nodiscard]] std::optional<double> stalled_seconds(Stream stream) const override {
    return inner_.stalled_seconds(stream);
  }

 private:
  struct Failure {  // an asynchronous failure, pending on a stream until reported
    std::uint32_t stream = 0;
    std::uint64_t seq = 0;  // the stream's call count when it failed
    std::string message;
  };
  struct Recording {  // where an event was last recorded
    std::uint32_t stream = 0;
    std::uint64_t seq = 0;
  };

  /// Counts a call to `site`; the mode to inject, if any (the lock is held by the caller).
  const Fault* next_fault(FaultSite site, const std::string& what);
  [[noreturn]] void raise_sync(const Fault& f, const std::string& what);
  void fail_async(std::uint32_t stream, const std::string& what);
  /// Throws AsyncBackendError for the pending failures `covered` selects, removing them.
  template <class Pred>
  void report(Pred covered);

  Backend& inner_;
  mutable std::mutex mutex_;
  std::vector<Fault> faults_;
  bool armed_ = true;
  std::size_t calls_[kFaultSites] = {};
  std::vector<std::string> log_;
  std::unordered_map<std::uint32_t, std::uint64_t> seq_;  // calls ordered on each stream
  std::unordered_map<std::uint32_t, Recording> recordings_;
  std::vector<Failure> pending_;
};

}  // namespace memento
