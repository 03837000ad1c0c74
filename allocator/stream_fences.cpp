#include "allocator/stream_fences.hpp"

#include <algorithm>
#include <functional>

namespace memento::detail {

StreamFences::~StreamFences() {
  for (Fence& f : fences_)
    if (f.has_event) backend_.destroy_event(f.event);
  for (Pending& p : pending_)
    for (Event e : p.events) backend_.destroy_event(e);
  for (Event e : spare_events_) backend_.destroy_event(e);
}

Event StreamFences::take_event() {
  if (spare_events_.empty()) return backend_.create_event();
  Event e = spare_events_.back();
  spare_events_.pop_back();
  return e;
}

std::uint64_t StreamFences::safe_seq(Stream stream) {
  Fence& f = fence(stream);
  if (f.in_flight && backend_.query(f.event)) {
    f.in_flight = false;
    f.safe_seq = f.recorded_seq;
  }
  return f.safe_seq;
}

void StreamFences::request_fence(Stream stream, std::uint64_t seq) {
  Fence& f = fence(stream);
  if (f.in_flight || seq <= f.safe_seq) return;
  if (!f.has_event) {
    f.event = take_event();
    f.has_event = true;
  }
  backend_.record(f.event, stream);
  f.in_flight = true;
  f.recorded_seq = seq;
}

void StreamFences::add_pending(Block* block, const std::vector<Stream>& streams) {
  Pending p{block, {}};
  p.events.reserve(streams.size() + 1);
  try {
    // The allocation stream too: reuse on a third stream must also wait for it.
    for (Stream s : streams) {
      p.events.push_back(take_event());
      backend_.record(p.events.back(), s);
    }
    p.events.push_back(take_event());
    backend_.record(p.events.back(), block->stream);
  } catch (...) {
    // Nothing was registered: the events go back and the caller's state is untouched.
    spare_events_.insert(spare_events_.end(), p.events.begin(), p.events.end());
    throw;
  }
  pending_.push_back(std::move(p));
}

void StreamFences::collect_completed(const std::function<void(Block*)>& release) {
  for (std::size_t i = 0; i < pending_.size();) {
    Pending& p = pending_[i];
    bool done = std::all_of(p.events.begin(), p.events.end(),
                            [this](Event e) { return backend_.query(e); });
    if (!done) {
      ++i;
      continue;
    }
    finish(i, release);
  }
}

bool StreamFences::adopt_oldest_pending(Stream waiter, const std::function<void(Block*)>& release) {
  if (pending_.empty()) return false;
  // Forgotten only once its waits were enqueued (as in wait_all).
  for (Event e : pending_.front().events) backend_.wait(waiter, e);
  finish(0, release);
  return true;
}

void StreamFences::wait_on_device(Stream waiter, Stream stream) {
  Event e = take_event();
  try {
    backend_.record(e, stream);
    backend_.wait(waiter, e);
  } catch (...) {
    spare_events_.push_back(e);
    throw;
  }
  // Re-recording it later is safe: a wait is bound to the recording it saw when enqueued.
  spare_events_.push_back(e);
}

void StreamFences::wait_all(std::uint64_t seq, const std::function<void(Block*)>& release) {
  // One entry at a time, each forgotten only once its own waits succeeded: if a wait
  // throws, the rest stay pending and no event is owned twice.
  while (!pending_.empty()) {
    for (Event e : pending_.back().events) backend_.synchronize(e);
    finish(pending_.size() - 1, release);
  }
  for (Stream s : streams_) {
    Fence& f = fence(s);
    if (f.in_flight) {
      backend_.synchronize(f.event);
      f.in_flight = false;
      f.safe_seq = f.recorded_seq;
    }
    if (f.safe_seq < seq) {
      request_fence(s, seq);
      backend_.synchronize(f.event);
      f.in_flight = false;
      f.safe_seq = f.recorded_seq;
    }
  }
}

void StreamFences::finish(std::size_t index, const std::function<void(Block*)>& release) {
  // Erased in place: pending_ stays in the order blocks were freed (oldest first).
  Pending p = std::move(pending_[index]);
  pending_.erase(pending_.begin() + static_cast<std::ptrdiff_t>(index));
  spare_events_.insert(spare_events_.end(), p.events.begin(), p.events.end());
  release(p.block);
}

void StreamFences::discard_pending() noexcept {
  for (Pending& p : pending_)
    spare_events_.insert(spare_events_.end(), p.events.begin(), p.events.end());
  pending_.clear();
}

}  // namespace memento::detail
