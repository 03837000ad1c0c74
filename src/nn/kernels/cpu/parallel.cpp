// Thread-count settings of the CPU kernels.
#include "nn/kernels/cpu/parallel.hpp"

#include <atomic>
#include <thread>

#include "nn/kernels/cpu/kernels_cpu.hpp"

namespace memento::nn::cpu {

namespace {

int default_threads() {
  const unsigned hw = std::thread::hardware_concurrency();
  return hw == 0 ? 1 : static_cast<int>(hw);
}

std::atomic<int> g_max_threads{default_threads()};
thread_local bool t_in_region = false;

}  // namespace

int num_threads() { return g_max_threads.load(std::memory_order_relaxed); }

void set_num_threads(int n) { g_max_threads.store(n < 1 ? 1 : n, std::memory_order_relaxed); }

namespace detail {

int max_threads() { return num_threads(); }

bool in_parallel_region() { return t_in_region; }

ParallelRegion::ParallelRegion() : was_inside_(t_in_region) { t_in_region = true; }

ParallelRegion::~ParallelRegion() { t_in_region = was_inside_; }

}  // namespace detail
}  // namespace memento::nn::cpu
