// The soak's threads: a watchdog that aborts a hung phase with its name, and a thread that
// changes the allocator's budget between the caller's steps.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>

#include "memento/caching_allocator.hpp"

namespace memento::nn::soak {

using Clock = std::chrono::steady_clock;

/// A positive integer from the environment, or `fallback`; aborts naming a malformed value.
inline int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return fallback;
  char* end = nullptr;
  const long n = std::strtol(v, &end, 10);
  if (*end != '\0' || n < 1 || n > 1000000) {
    std::fprintf(stderr, "soak: %s=\"%s\" is not a positive integer\n", name, v);
    std::abort();
  }
  return static_cast<int>(n);
}

/// Aborts the process when one phase of a run (a step, a budget change) takes longer than
/// the limit: a deadlock would otherwise hang until ctest's timeout, saying nothing. Runs on
/// several threads each report their own phase.
class Watchdog {
 public:
  explicit Watchdog(double limit_s) : limit_(limit_s), thread_([this] { watch(); }) {}
  ~Watchdog() {
    {
      std::lock_guard lock(mutex_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

  void enter(const std::string& run, int step, const char* phase) {
    std::lock_guard lock(mutex_);
    slots_[run] = {step, phase, Clock::now()};
  }
  void leave(const std::string& run) {
    std::lock_guard lock(mutex_);
    slots_.erase(run);
  }

 private:
  struct Slot {
    int step = -1;
    const char* phase = nullptr;
    Clock::time_point since;
  };
  void watch() {
    std::unique_lock lock(mutex_);
    while (!cv_.wait_for(lock, std::chrono::milliseconds(200), [this] { return stop_; })) {
      for (const auto& [run, slot] : slots_) {
        const double s = std::chrono::duration<double>(Clock::now() - slot.since).count();
        if (s <= limit_) continue;
        std::fprintf(stderr,
                     "soak: deadlock? run %s, step %d, phase %s has not finished after %.0f s "
                     "(limit %.0f s, MEMENTO_SOAK_WATCHDOG_S)\n",
                     run.c_str(), slot.step, slot.phase, s, limit_);
        std::fflush(stderr);
        std::abort();
      }
    }
  }

  const double limit_;
  std::mutex mutex_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::map<std::string, Slot> slots_;
  std::thread thread_;  // last: starts once the rest is made
};

/// A thread that changes the allocator's budget when asked, and returns only once it has:
/// the call happens on this thread, strictly between the steps of the caller's.
class BudgetChanger {
 public:
  explicit BudgetChanger(CachingAllocator& alloc) : alloc_(alloc), thread_([this] { serve(); }) {}
  ~BudgetChanger() {
    {
      std::lock_guard lock(mutex_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  BudgetChanger(const BudgetChanger&) = delete;
  BudgetChanger& operator=(const BudgetChanger&) = delete;

  void set(std::size_t bytes) {
    std::unique_lock lock(mutex_);
    request_ = bytes;
    done_ = false;
    cv_.notify_all();
    cv_.wait(lock, [this] { return done_; });
    if (error_) std::rethrow_exception(std::exchange(error_, nullptr));
  }
  [[nodiscard]] std::size_t changes() const { return changes_; }
  [[nodiscard]] std::thread::id id() const { return thread_.get_id(); }
  [[nodiscard]] bool all_on_this_thread() const { return all_here_; }

 private:
  void serve() {
    std::unique_lock lock(mutex_);
    for (;;) {
      cv_.wait(lock, [this] { return stop_ || request_.has_value(); });
      if (stop_) return;
      const std::size_t bytes = *std::exchange(request_, std::nullopt);
      lock.unlock();
      std::exception_ptr error;
      try {
        alloc_.set_budget(bytes);
        if (alloc_.budget() != bytes) throw std::runtime_error("budget() differs from set_budget");
      } catch (...) {
        error = std::current_exception();
      }
      lock.lock();
      all_here_ = all_here_ && std::this_thread::get_id() == thread_.get_id();
      ++changes_;
      error_ = error;
      done_ = true;
      cv_.notify_all();
    }
  }

  CachingAllocator& alloc_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::optional<std::size_t> request_;
  bool done_ = false;
  bool stop_ = false;
  bool all_here_ = true;
  std::size_t changes_ = 0;
  std::exception_ptr error_;
  std::thread thread_;  // last: starts once the rest is made
};

}  // namespace memento::nn::soak
