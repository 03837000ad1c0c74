#include "allocator/stream_fences.hpp"

#include <algorithm>

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
  // The allocation stream too: reuse on a third stream must also wait for it.
  for (Stream s : streams) {
    Event e = take_event();
    backend_.record(e, s);
    p.events.push_back(e);
  }
  Event own = take_event();
  backend_.record(own, block->stream);
  p.events.push_back(own);
  pending_.push_back(std::move(p));
}

std::vector<Block*> StreamFences::collect_completed() {
  std::vector<Block*> done;
  std::erase_if(pending_, [&](Pending& p) {
    for (Event e : p.events)
      if (!backend_.query(e)) return false;
    spare_events_.insert(spare_events_.end(), p.events.begin(), p.events.end());
    done.push_back(p.block);
    return true;
  });
  return done;
}

std::vector<Block*> StreamFences::wait_all(std::uint64_t seq) {
  std::vector<Block*> done;
  for (Pending& p : pending_) {
    for (Event e : p.events) backend_.synchronize(e);
    spare_events_.insert(spare_events_.end(), p.events.begin(), p.events.end());
    done.push_back(p.block);
  }
  pending_.clear();
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
  return done;
}

void StreamFences::discard_pending() noexcept {
  for (Pending& p : pending_)
    spare_events_.insert(spare_events_.end(), p.events.begin(), p.events.end());
  pending_.clear();
}

}  // namespace memento::detail
