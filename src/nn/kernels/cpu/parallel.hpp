// Fork-join over independent work items, for kernels whose items write disjoint outputs.
//
// Which thread runs an item never changes what the item computes, so results are the same bits
// for any thread count; only the item boundaries (chosen by the caller from the shapes alone)
// fix the arithmetic.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <thread>
#include <vector>

namespace memento::nn::cpu::detail {

/// The cap set by set_num_threads (at least 1).
int max_threads();

/// Whether this thread is already running items of a parallel_for: nested calls run serially
/// rather than multiplying threads.
bool in_parallel_region();

/// Marks the calling thread as inside a parallel_for for its lifetime.
class ParallelRegion {
 public:
  ParallelRegion();
  ~ParallelRegion();
  ParallelRegion(const ParallelRegion&) = delete;
  ParallelRegion& operator=(const ParallelRegion&) = delete;

 private:
  bool was_inside_;
};

/// Runs fn(i) for i in [0, count). `work_per_item` (multiply-adds, roughly) decides how many
/// threads are worth starting: each should get about a millisecond's worth of work, since a
/// thread costs tens of microseconds to start.
template <typename F>
void parallel_for(std::size_t count, double work_per_item, F&& fn) {
  constexpr double kMinWorkPerThread = 1 << 22;
  std::size_t threads = 1;
  if (!in_parallel_region() && count > 1) {
    const double by_work = work_per_item * static_cast<double>(count) / kMinWorkPerThread;
    threads = std::min({count, static_cast<std::size_t>(max_threads()),
                        static_cast<std::size_t>(std::max(1.0, by_work))});
  }
  if (threads <= 1) {
    for (std::size_t i = 0; i < count; ++i) fn(i);
    return;
  }
  std::atomic<std::size_t> next{0};
  auto worker = [&] {
    const ParallelRegion region;
    for (std::size_t i = next.fetch_add(1); i < count; i = next.fetch_add(1)) fn(i);
  };
  {
    // jthreads join on destruction, also when starting one throws.
    std::vector<std::jthread> helpers;
    helpers.reserve(threads - 1);
    for (std::size_t t = 1; t < threads; ++t) helpers.emplace_back(worker);
    worker();
  }
}

/// Runs fn(begin, end) over [0, count) cut into blocks of `block` (the last may be shorter),
/// blocks in parallel; `work_per_unit` as for parallel_for, per unit of [0, count).
template <typename F>
void parallel_for_blocks(std::size_t count, std::size_t block, double work_per_unit, F&& fn) {
  const std::size_t blocks = (count + block - 1) / block;
  parallel_for(blocks, work_per_unit * static_cast<double>(block), [&](std::size_t b) {
    const std::size_t begin = b * block;
    fn(begin, std::min(count, begin + block));
  });
}

}  // namespace memento::nn::cpu::detail
