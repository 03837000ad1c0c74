// A host-backend stream: one worker thread that runs its queue in submission order.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

namespace memento {

/// Work is numbered by tickets: the n-th task submitted has ticket n (from 1). An event is a
/// (stream, ticket) pair and is complete once `completed() >= ticket`, which needs no queue
/// traffic: recording and querying an event are a couple of atomic loads.
class HostStream {
 public:
  explicit HostStream(std::string name);
  ~HostStream();
  HostStream(const HostStream&) = delete;
  HostStream& operator=(const HostStream&) = delete;

  /// Enqueues a task; returns its ticket.
  std::uint64_t submit(std::function<void()> task);
  /// Ticket of the last task submitted so far (0 when none).
  [[nodiscard]] std::uint64_t submitted() const noexcept;
  /// Ticket of the last task that finished running.
  [[nodiscard]] std::uint64_t completed() const noexcept {
    return completed_.load(std::memory_order_acquire);
  }
  /// Blocks until the task with this ticket (and all before it) has run.
  void wait_for(std::uint64_t ticket);
  /// Rethrows, as BackendError, the first exception a task on this stream raised.
  void check_error() const;

  [[nodiscard]] const std::string& name() const noexcept { return name_; }

  /// Adds time this stream's worker spent blocked waiting for another stream.
  void add_stall(double seconds) noexcept;
  [[nodiscard]] double stalled_seconds() const noexcept;

 private:
  void run();

  std::string name_;
  mutable std::mutex mutex_;
  std::condition_variable work_ready_;
  std::condition_variable work_done_;
  std::deque<std::function<void()>> queue_;
  std::uint64_t submitted_ = 0;
  std::atomic<std::uint64_t> completed_{0};
  std::atomic<std::uint64_t> stalled_ns_{0};
  bool stopping_ = false;
  std::string error_;  // first task failure; tasks keep running so waiters never hang
  std::thread worker_;
};

}  // namespace memento
