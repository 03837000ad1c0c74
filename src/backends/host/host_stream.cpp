#include "backends/host/host_stream.hpp"

#include "memento/error.hpp"

namespace memento {

HostStream::HostStream(std::string name) : name_(std::move(name)) {
  worker_ = std::thread([this] { run(); });
}

HostStream::~HostStream() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  work_ready_.notify_all();
  worker_.join();
}

std::uint64_t HostStream::submit(std::function<void()> task) {
  std::uint64_t ticket = 0;
  {
    std::lock_guard lock(mutex_);
    queue_.push_back(std::move(task));
    ticket = ++submitted_;
  }
  work_ready_.notify_one();
  return ticket;
}

std::uint64_t HostStream::submitted() const noexcept {
  std::lock_guard lock(mutex_);
  return submitted_;
}

void HostStream::wait_for(std::uint64_t ticket) {
  if (completed() >= ticket) return;
  std::unique_lock lock(mutex_);
  work_done_.wait(lock, [&] { return completed() >= ticket; });
}

void HostStream::add_stall(double seconds) noexcept {
  stalled_ns_.fetch_add(static_cast<std::uint64_t>(seconds * 1e9), std::memory_order_relaxed);
}

double HostStream::stalled_seconds() const noexcept {
  return static_cast<double>(stalled_ns_.load(std::memory_order_relaxed)) * 1e-9;
}

void HostStream::check_error() const {
  std::lock_guard lock(mutex_);
  MEMENTO_EXPECTS(error_.empty(), "host stream " + name_ + ": a task failed: " + error_,
                  AsyncBackendError);
}

void HostStream::run() {
  std::unique_lock lock(mutex_);
  for (;;) {
    work_ready_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stopping with nothing left to run
    auto task = std::move(queue_.front());
    queue_.pop_front();
    lock.unlock();
    std::string failure;
    try {
      task();
    } catch (const std::exception& e) {
      failure = e.what();
    } catch (...) {
      failure = "unknown exception";
    }
    lock.lock();
    if (!failure.empty() && error_.empty()) error_ = std::move(failure);
    completed_.fetch_add(1, std::memory_order_acq_rel);
    work_done_.notify_all();
  }
}

}  // namespace memento
