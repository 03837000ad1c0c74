/* Using memento through its C API, the way PyTorch's CUDAPluggableAllocator does.
 * Run with e.g. MEMENTO_DEVICE=host:256MiB MEMENTO_BUDGET=64MiB. */
#include <stdio.h>

#include "memento/memento.h"

int main(void) {
  void* blocks[8];
  for (int i = 0; i < 8; ++i) {
    blocks[i] = memento_malloc((ssize_t)(1 << 20) * (i + 1), 0, NULL);
    if (blocks[i] == NULL) {
      fprintf(stderr, "memento_malloc failed: %s\n", memento_last_error());
      return 1;
    }
  }
  for (int i = 0; i < 8; ++i) memento_free(blocks[i], (ssize_t)(1 << 20) * (i + 1), 0, NULL);

  memento_stats stats;
  if (memento_get_stats(&stats) != 0) {
    fprintf(stderr, "memento_get_stats failed: %s\n", memento_last_error());
    return 1;
  }
  printf("budget %zu, peak allocated %zu, peak reserved %zu, live blocks %zu\n", stats.budget,
         stats.peak_allocated, stats.peak_reserved, stats.live_blocks);
  memento_shutdown();
  return stats.live_blocks == 0 ? 0 : 1;
}
