#include "nn/kernels/cpu/thread_pool.hpp"

#include <algorithm>
#include <utility>

#include "backends/numa.hpp"

namespace memento::nn::cpu {

ThreadPool::ThreadPool(int threads, int numa_node) {
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  workers_.reserve(static_cast<std::size_t>(threads - 1));
  try {
    for (int part = 1; part < threads; ++part) {
      workers_.emplace_back([this, part, numa_node] {
        if (numa_node >= 0) (void)numa::bind_calling_thread(numa_node);
        work(part);
      });
    }
  } catch (...) {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    start_.notify_all();
    for (std::thread& t : workers_) t.join();
    throw;
  }
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  start_.notify_all();
  for (std::thread& t : workers_) t.join();
}

void ThreadPool::work(int part) {
  std::size_t seen = 0;
  std::unique_lock lock(mutex_);
  for (;;) {
    start_.wait(lock, [&] { return stopping_ || generation_ != seen; });
    if (stopping_) return;
    seen = generation_;
    const std::function<void(int, int)>* job = job_;
    lock.unlock();
    std::exception_ptr failure;
    try {
      (*job)(part, threads());
    } catch (...) {
      failure = std::current_exception();
    }
    lock.lock();
    if (failure && !error_) error_ = failure;
    if (--pending_ == 0) done_.notify_one();
  }
}

void ThreadPool::run(const std::function<void(int, int)>& fn) {
  std::lock_guard serial(run_mutex_);
  const int parts = threads();
  if (parts == 1) {
    fn(0, 1);
    return;
  }
  {
    std::lock_guard lock(mutex_);
    job_ = &fn;
    pending_ = parts - 1;
    error_ = nullptr;
    ++generation_;
  }
  start_.notify_all();
  std::exception_ptr mine;
  try {
    fn(0, parts);
  } catch (...) {
    mine = std::current_exception();
  }
  std::exception_ptr theirs;
  {
    std::unique_lock lock(mutex_);
    done_.wait(lock, [&] { return pending_ == 0; });
    job_ = nullptr;
    theirs = std::exchange(error_, nullptr);
  }
  if (mine) std::rethrow_exception(mine);
  if (theirs) std::rethrow_exception(theirs);
}

Range split(std::size_t n, int part, int parts, std::size_t align) noexcept {
  const auto p = static_cast<std::size_t>(part), k = static_cast<std::size_t>(parts);
  const std::size_t units = (n + align - 1) / align;
  const auto at = [&](std::size_t i) { return std::min(n, (units * i / k) * align); };
  return {at(p), at(p + 1)};
}

}  // namespace memento::nn::cpu
