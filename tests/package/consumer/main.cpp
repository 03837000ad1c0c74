#include <cstdio>

#include "memento/backends.hpp"
#include "memento/caching_allocator.hpp"

int main() {
  auto backend = memento::make_host_backend({.capacity = std::size_t{64} << 20});
  memento::CachingAllocator alloc(*backend);
  void* p = alloc.allocate(1 << 20);
  alloc.deallocate(p);
  std::printf("consumer ok: %zu segment(s)\n", alloc.stats().segments.current);
  return 0;
}
