/* memento C API. memento_malloc and memento_free have exactly the signatures that
 * torch.cuda.memory.CUDAPluggableAllocator loads:
 *
 *   alloc = torch.cuda.memory.CUDAPluggableAllocator("libmemento.so",
 *                                                    "memento_malloc", "memento_free")
 *   torch.cuda.memory.change_current_allocator(alloc)
 *
 * The device and budget come from MEMENTO_DEVICE, MEMENTO_BUDGET and MEMENTO_CONF (read on
 * first use). Functions that can fail return NULL or -1 and leave a message for
 * memento_last_error(); nothing is silently ignored. */
#ifndef MEMENTO_MEMENTO_H
#define MEMENTO_MEMENTO_H

#include <stddef.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The same type as cudaStream_t (a pointer to the opaque CUstream_st), so the C API needs no
 * CUDA headers. On host and sim builds it is an opaque stream handle; NULL is the default. */
struct CUstream_st;
typedef struct CUstream_st* memento_stream_t;

/* Allocates `size` bytes of device memory usable on `stream`. Returns NULL for size 0, and
 * NULL with memento_last_error() set when the size is negative, the device does not match
 * the configured one, or the budget cannot be met after eviction. */
void* memento_malloc(ssize_t size, int device, memento_stream_t stream);

/* Frees memory from memento_malloc. Double frees, foreign pointers and a size that does
 * not match the allocation are reported (stderr and memento_last_error()) and leave the
 * allocator's state unchanged. */
void memento_free(void* ptr, ssize_t size, int device, memento_stream_t stream);

/* Marks `stream` as another user of `ptr` (torch's Tensor.record_stream). 0 or -1. */
int memento_record_stream(void* ptr, memento_stream_t stream);

typedef struct memento_stats {
  size_t budget;
  size_t allocated, peak_allocated;
  size_t requested, peak_requested;
  size_t reserved, peak_reserved;
  size_t active, peak_active;
  size_t segments, live_blocks;
  size_t allocations, frees, cache_hits, segment_allocs, segment_frees;
  size_t pressure_calls, pressure_freed, out_of_memory;
  double fragmentation;
} memento_stats;

/* Fills *out. 0 on success, -1 on error. */
int memento_get_stats(memento_stats* out);

/* Sets the budget in bytes (positive, at most the device capacity). 0 or -1. */
int memento_set_budget(size_t bytes);

/* The budget in bytes, or 0 (with memento_last_error()) when memento failed to start. */
size_t memento_get_budget(void);

/* Waits for outstanding stream work and returns every unused cached segment. 0 or -1. */
int memento_empty_cache(void);

/* The last error on this thread ("" when none). Valid until the next memento call. */
const char* memento_last_error(void);

/* Tears down the process-wide allocator; the next call reads the environment again.
 * Live allocations are reported and freed. */
void memento_shutdown(void);

#ifdef __cplusplus
}
#endif

#endif /* MEMENTO_MEMENTO_H */
