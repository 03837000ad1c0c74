// The decision-only C API's copies: offloads to the pinned host pool on memento's d2h stream,
// copies back on its h2d stream (memento_copy_back makes the caller's stream wait; a
// memento_prefetch records an event the caller waits for later with memento_wait_ready), and
// the plan's prefetch schedule (memento_prefetch_due). Streams are made on first use; events
// are recycled through spare_events_.
#include <fmt/format.h>

#include <exception>

#include "capi/plan_state.hpp"
#include "memento/bytes.hpp"
#include "memento/error.hpp"

namespace memento::capi {

void PlanState::offload(std::int64_t id, Stream caller, bool caller_keeps_storage) {
  std::lock_guard lock(mutex_);
  const std::size_t o = live_ordinal(id);
  Tensor& t = tensors_[o];
  MEMENTO_EXPECTS(t.host == nullptr, fmt::format("tensor id {} is already offloaded; copy it back "
                                                 "(memento_copy_back) before offloading it again",
                                                 id));
  ensure_streams();
  void* host = host_pool_.try_allocate(t.bytes);
  if (host == nullptr) {
    const PinnedPoolStats s = host_pool_.stats();
    MEMENTO_FAIL(
        OutOfMemory,
        fmt::format("the pinned host pool is exhausted: {} for tensor id {} do not "
                    "fit its budget of {} ({} in use; MEMENTO_HOST_BUDGET sets it); "
                    "keep the tensor on the device",
                    format_bytes(t.bytes), id, format_bytes(s.budget), format_bytes(s.in_use)));
  }
  const Event done = take_event();
  try {
    wait_for(*d2h_, caller);
    // A copy back from memento_prefetch the caller has not waited for writes the bytes.
    if (t.copied_back) backend_.wait(*d2h_, *t.copied_back);
    backend_.copy_async(host, t.ptr, t.bytes, CopyKind::device_to_host, *d2h_);
    backend_.record(done, *d2h_);
  } catch (...) {
    spare_events_.push_back(done);
    host_pool_.deallocate(host, *d2h_);
    throw;
  }
  drop_copy_back(t);
  t.host = host;
  t.copied_out = done;
  // The storage may be freed at once when the allocator knows the copy still reads it;
  // otherwise the caller's later work waits for the copy, unless the caller keeps it.
  if (caller_keeps_storage) return;
  if (!record_use(t.ptr, *d2h_)) backend_.wait(caller, t.copied_out);
}

bool PlanState::offload_done(std::int64_t id, bool block) {
  std::lock_guard lock(mutex_);
  const std::size_t o = live_ordinal(id);
  const Tensor& t = tensors_[o];
  MEMENTO_EXPECTS(t.host != nullptr,
                  fmt::format("tensor id {} is not offloaded (memento_offload first; a copy back "
                              "ends the offload)",
                              id));
  if (block) backend_.synchronize(t.copied_out);
  return backend_.query(t.copied_out);
}

void PlanState::copy_back(std::int64_t id, void* dst, Stream caller) {
  std::lock_guard lock(mutex_);
  Tensor& t = offloaded(id, dst);
  copy_in(t, dst, caller);
  wait_for(caller, *h2d_);
  host_copy_done(t, dst);
}

void PlanState::prefetch(std::int64_t id, void* dst, Stream caller) {
  std::lock_guard lock(mutex_);
  Tensor& t = offloaded(id, dst);
  const Event ready = take_event();
  try {
    copy_in(t, dst, caller);
    backend_.record(ready, *h2d_);
  } catch (...) {
    spare_events_.push_back(ready);
    throw;
  }
  // A memento_malloc block may be freed before the caller waits: the copy holds it.
  (void)record_use(dst, *h2d_);
  host_copy_done(t, dst);
  t.copied_back = ready;
}

void PlanState::wait_ready(std::int64_t id, Stream caller) {
  std::lock_guard lock(mutex_);
  Tensor& t = tensors_[ordinal_of(id, "tensor")];
  if (!t.copied_back) return;
  backend_.wait(caller, *t.copied_back);
  if (backend_.query(*t.copied_back)) drop_copy_back(t);  // done: no later wait needs it
}

std::size_t PlanState::prefetch_due(std::int64_t* ids, std::size_t cap) {
  std::lock_guard lock(mutex_);
  expect_open();
  MEMENTO_EXPECTS(ids != nullptr || cap == 0,
                  fmt::format("ids is NULL with cap {} (NULL is accepted with cap 0)", cap));
  if (!following_ || graph_.points.empty()) return 0;
  const std::size_t now = graph_.points.size() - 1;
  std::size_t n = 0;
  bool settled = true;  // every entry before this one is dealt with for the step
  for (std::size_t k = prefetch_cursor_; k < prefetch_order_.size(); ++k) {
    const auto [at, o] = prefetch_order_[k];
    if (at > now) break;
    bool done = false;
    if (o < tensors_.size()) {
      Tensor& t = tensors_[o];
      done = t.prefetch_returned || !t.live;
      if (!done && t.host != nullptr) {  // due and offloaded; not yet offloaded: later
        if (n == cap) break;
        ids[n++] = id_of(o);
        t.prefetch_returned = done = true;
      }
    }
    if (settled && done)
      prefetch_cursor_ = k + 1;
    else
      settled = false;
  }
  return n;
}

void PlanState::ensure_streams() {
  if (!d2h_) d2h_ = backend_.create_stream();
  if (!h2d_) h2d_ = backend_.create_stream();
}

Event PlanState::take_event() {
  if (spare_events_.empty()) return backend_.create_event();
  const Event e = spare_events_.back();
  spare_events_.pop_back();
  return e;
}

// Later work on `waiter` waits for the work queued on `target` so far. A wait holds the
// event's capture at the time of the call, so the event can be reused at once.
void PlanState::wait_for(Stream waiter, Stream target) {
  const Event e = take_event();
  spare_events_.push_back(e);
  backend_.record(e, target);
  backend_.wait(waiter, e);
}

// Marks `stream` as a user of the block at `ptr` when it is a memento_malloc block.
bool PlanState::record_use(const void* ptr, Stream stream) {
  try {
    allocator_.record_stream(const_cast<void*>(ptr), stream);
    return true;
  } catch (const LogicError&) {
    return false;  // not the start of a live block of the allocator
  }
}

// The live, offloaded tensor `id`, to be copied back into `dst`.
PlanState::Tensor& PlanState::offloaded(std::int64_t id, const void* dst) {
  Tensor& t = tensors_[live_ordinal(id)];
  MEMENTO_EXPECTS(t.host != nullptr,
                  fmt::format("tensor id {} is not offloaded (memento_offload first)", id));
  MEMENTO_EXPECTS(dst != nullptr, "the destination must not be NULL");
  return t;
}

// Queues the copy of an offloaded tensor into `dst` on the h2d stream, after its copy out
// and the work queued on `caller` so far (dst may still be in use by it).
void PlanState::copy_in(Tensor& t, void* dst, Stream caller) {
  wait_for(*h2d_, caller);
  backend_.wait(*h2d_, t.copied_out);
  backend_.copy_async(dst, t.host, t.bytes, CopyKind::host_to_device, *h2d_);
}

// After copy_in: the host buffer goes back to the pool once the copy has read it, and the
// tensor lives at `dst`.
void PlanState::host_copy_done(Tensor& t, void* dst) {
  host_pool_.deallocate(t.host, *h2d_);
  spare_events_.push_back(t.copied_out);
  t.host = nullptr;
  t.ptr = dst;
}

// Gives a still offloaded tensor's host buffer back once its copy out has run.
void PlanState::drop_host_copy(Tensor& t) {
  if (t.host == nullptr) return;
  host_pool_.deallocate(t.host, *d2h_);
  spare_events_.push_back(t.copied_out);
  t.host = nullptr;
}

// Forgets a memento_prefetch's event (waits already queued on it hold their capture).
void PlanState::drop_copy_back(Tensor& t) {
  if (!t.copied_back) return;
  spare_events_.push_back(*t.copied_back);
  t.copied_back.reset();
}

}  // namespace memento::capi
