// A small persistent fork-join pool for host work that runs often and briefly (the host
// AdamW step runs once per parameter per step): starting threads for each call, as
// parallel_for does, would cost more than the work for most parameters.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace memento::nn::cpu {

class ThreadPool {
 public:
  /// `threads` workers in all, the caller of run() counting as one (so threads - 1 are
  /// started; 0 means std::thread::hardware_concurrency()). With `numa_node` >= 0 the
  /// started threads bind themselves to that node's CPUs (where hwloc can).
  explicit ThreadPool(int threads = 0, int numa_node = -1);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  [[nodiscard]] int threads() const noexcept { return static_cast<int>(workers_.size()) + 1; }

  /// Calls fn(part, parts) for part in [0, parts) with parts = threads(), each on its own
  /// thread (part 0 on the caller), and returns when all have returned. The first exception
  /// thrown is rethrown here. Calls from several threads are serialized.
  void run(const std::function<void(int part, int parts)>& fn);

 private:
  void work(int part);

  std::mutex run_mutex_;  // one run() at a time
  std::mutex mutex_;
  std::condition_variable start_;
  std::condition_variable done_;
  const std::function<void(int, int)>* job_ = nullptr;
  std::size_t generation_ = 0;
  int pending_ = 0;
  bool stopping_ = false;
  std::exception_ptr error_;
  std::vector<std::thread> workers_;
};

/// [begin, end) of part `part` of `parts` over n items, cut at multiples of `align` items so
/// that the parts do not share cache lines.
struct Range {
  std::size_t begin = 0, end = 0;
};
[[nodiscard]] Range split(std::size_t n, int part, int parts, std::size_t align = 16) noexcept;

}  // namespace memento::nn::cpu
