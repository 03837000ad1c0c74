// Stream ordering for cached blocks. A block freed on stream S is reusable on S at once
// (stream order protects it) but on another stream only once the work S had when the block
// was freed has completed. Rather than record an event per free (a cudaEventRecord on every
// free would dominate the fast path), each stream has one lazily recorded fence: blocks
// freed before the fence was recorded are safe for any stream once it completes.
// Blocks with record_stream users wait for one event per extra stream instead.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "allocator/block.hpp"
#include "memento/backend.hpp"

namespace memento::detail {

class StreamFences {
 public:
  explicit StreamFences(Backend& backend) : backend_(backend) {}
  ~StreamFences();
  StreamFences(const StreamFences&) = delete;
  StreamFences& operator=(const StreamFences&) = delete;

  /// `stream` has (or may get) cached blocks: a block freed on it, or the unused rest of a
  /// segment it grew. Inline: it is on every free.
  void note_stream(Stream stream) {
    Fence& f = fence(stream);
    if (!f.seen) {
      f.seen = true;
      streams_.push_back(stream);
    }
  }
  /// Streams that may own cached blocks, in first-seen order.
  [[nodiscard]] const std::vector<Stream>& streams_with_frees() const noexcept { return streams_; }
  /// Blocks freed on `stream` with a free sequence number up to this are safe elsewhere.
  [[nodiscard]] std::uint64_t safe_seq(Stream stream);
  /// Records a fence on `stream` covering frees up to `seq`, unless one is in flight.
  void request_fence(Stream stream, std::uint64_t seq);

  /// Holds `block` until the work now submitted to each of `streams` (and to its own
  /// stream) has completed. If recording throws, nothing is held and the error propagates.
  void add_pending(Block* block, const std::vector<Stream>& streams);
  /// Hands each pending block whose events have all completed to `release`.
  void collect_completed(const std::function<void(Block*)>& release);
  /// Makes `waiter` wait on the device for the events of the oldest pending block (the
  /// one most likely done already), then hands it to `release`: it is then safe on
  /// `waiter` in stream order, with no host synchronisation. False when none is pending.
  bool adopt_oldest_pending(Stream waiter, const std::function<void(Block*)>& release);
  /// Makes `waiter` wait on the device for all work submitted to `stream` so far.
  void wait_on_device(Stream waiter, Stream stream);
  /// Blocks until every stream's frees up to `seq` are safe, handing every pending block to
  /// `release` once its events completed. Exception-safe: what was not released stays
  /// pending.
  void wait_all(std::uint64_t seq, const std::function<void(Block*)>& release);
  /// Forgets pending blocks (allocator teardown).
  void discard_pending() noexcept;

 private:
  struct Fence {
    Event event{};
    bool has_event = false;
    bool in_flight = false;
    bool seen = false;  // listed in streams_
    std::uint64_t recorded_seq = 0;
    std::uint64_t safe_seq = 0;
  };
  struct Pending {
    Block* block = nullptr;
    std::vector<Event> events;
  };

  Fence& fence(Stream stream) {
    if (stream.id >= fences_.size()) fences_.resize(stream.id + 1);
    return fences_[stream.id];
  }
  Event take_event();
  void finish(std::size_t index, const std::function<void(Block*)>& release);

  Backend& backend_;
  std::vector<Fence> fences_;  // by stream id
  std::vector<Stream> streams_;
  std::vector<Pending> pending_;
  std::vector<Event> spare_events_;
};

}  // namespace memento::detail
