/* memento C API. memento_malloc and memento_free have exactly the signatures that
 * torch.cuda.memory.CUDAPluggableAllocator loads:
 *
 *   alloc = torch.cuda.memory.CUDAPluggableAllocator("libmemento.so",
 *                                                    "memento_malloc", "memento_free")
 *   torch.cuda.memory.change_current_allocator(alloc)
 *
 * The device and budget come from MEMENTO_DEVICE, MEMENTO_BUDGET and MEMENTO_CONF, the pinned
 * host memory offloads may fill from MEMENTO_HOST_BUDGET (read on first use). Functions that can
 * fail return NULL or -1 and leave a message for memento_last_error(); nothing is silently ignored.
 */
#ifndef MEMENTO_MEMENTO_H
#define MEMENTO_MEMENTO_H

#include <stddef.h>
#include <stdint.h>
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

/* ---- Planning for a framework that owns its tensors (decision-only) -------------------
 *
 * A framework that keeps its tensors' storage itself (PyTorch with memento as its pluggable
 * allocator) describes each training step to memento: the tensors it tracks, the regions
 * that can recompute them and their uses and frees in program order. The first step is
 * observed; at its end memento plans for the budget (memento_get_budget) which tensors to
 * keep, offload to pinned host memory or discard and recompute, and after which use. From
 * the next step the framework asks memento_plan_action for each tensor and carries the plan
 * out itself: memento never calls back into it. memento_offload and memento_copy_back move
 * bytes on memento's own copy streams for it. A step whose sequence differs from the planned
 * one (other tensor count, bytes, regions' inputs or use counts) is observed again and
 * planned anew; so is a plan whose budget changed (at the next memento_step_begin).
 *
 * Tensor ids are valid within the step that registered them; the creation ordinal within
 * the step is what matches a tensor to the plan. Memory between uses is the process-wide
 * allocator's active bytes less the bytes of the registered tensors that are live, so the
 * framework is assumed to allocate through memento_malloc, unless it gives its own count
 * (memento_note_other_bytes). Time is the regions' seconds and the caller's noted seconds
 * (memento_note_seconds). The plan also says when each offloaded tensor's copy back is due
 * (memento_prefetch_due), so the copy can run ahead of the use (memento_prefetch, then
 * memento_wait_ready). All of it is thread-safe (one lock), and memento_shutdown drops it
 * (plan and link rates included). */

/* What the plan does with a tensor. */
typedef enum memento_action {
  MEMENTO_KEEP = 0,     /* stays on the device */
  MEMENTO_OFFLOAD = 1,  /* copied to host after a use (memento_offload), back before the next */
  MEMENTO_RECOMPUTE = 2 /* freed after a use; its region is rerun before the next */
} memento_action;

/* How a step ran. */
typedef enum memento_step_phase {
  MEMENTO_STEP_OBSERVED = 0, /* no plan applied: it was watched and planned from */
  MEMENTO_STEP_PLANNED = 1   /* the plan in force applied to it throughout */
} memento_step_phase;

typedef struct memento_step_stats {
  int phase;    /* a memento_step_phase */
  int new_plan; /* 1 when a plan was made for this step (its budget changed) or at its end */
  int fits;     /* 1 when the plan's predicted peak is within the budget less its margin */
  size_t tensors, tensor_bytes; /* registered in this step */
  /* The plan in force for the next step: the tensors it could evict (used at least twice,
   * and in a region or offloadable), by decision, and their bytes. */
  size_t kept, offloaded, recomputed;
  size_t kept_bytes, offloaded_bytes, recomputed_bytes;
  size_t budget;                  /* the budget the plan was made for */
  size_t predicted_peak;          /* bytes, at the plan's highest point */
  double observed_seconds;        /* the step planned from: regions' and noted seconds */
  double predicted_extra_seconds; /* recompute and copies the step cannot hide */
  double plan_cpu_seconds;        /* CPU time the planning took (0 without a new plan) */
  double margin;                  /* the plan's margin below the budget (0.05 = 5%) */
} memento_step_stats;

/* Opens a step. -1 when one is already open. */
int memento_step_begin(void);

/* Closes the step; plans when it was observed (or the budget changed) and fills *out when
 * `out` is not NULL. Tensors still offloaded give their host buffers back (their bytes are
 * dropped); copies back from memento_prefetch are no longer waited for by memento_wait_ready.
 * -1 when no step is open. */
int memento_step_end(memento_step_stats* out);

/* A tensor the caller owns, of `bytes` (positive) at `ptr` (not NULL), made on `stream`
 * (checked as memento_malloc does; memento_offload and memento_copy_back name their own).
 * Returns its id (>= 0), or -1 (no step open, bad arguments). */
int64_t memento_tensor_register(const void* ptr, size_t bytes, memento_stream_t stream);

/* The `n_outputs` (at least 1) tensors `outputs` can be recomputed from the `n_inputs`
 * tensors `inputs` (NULL when none) by rerunning the region, which costs `seconds` (finite,
 * >= 0, measured by the caller). The cost is charged once per output a recompute restores.
 * The regions' seconds registered so far, with those noted by memento_note_seconds, are the
 * step's clock. A tensor is the output of at most one region and never its own input; tensors
 * outside every region can only be kept or offloaded. Every id must be registered in this
 * step. 0 or -1 (nothing registered). */
int memento_region_register(const int64_t* outputs, size_t n_outputs, const int64_t* inputs,
                            size_t n_inputs, double seconds);

/* A use of a live tensor, in program order (an offloaded tensor must be copied back
 * first: memento_copy_back, or memento_prefetch, whose copy may still be running). 0 or -1. */
int memento_tensor_use(int64_t id);

/* The end of a tensor's life in this step (call it once its storage is freed; a tensor
 * still offloaded gives its host buffer back). 0 or -1. */
int memento_tensor_free(int64_t id);

/* The plan for this tensor (matched by creation ordinal to the planned step): *action a
 * memento_action, *after_use the 0-based use after which to evict it (0 for keep). Keep
 * while there is no plan, and for the rest of a step that has departed from the planned
 * one. 0 or -1 (unknown id, NULL output). */
int memento_plan_action(int64_t id, int* action, uint32_t* after_use);

/* Copies the tensor's bytes (from its registered pointer, or from where it was last copied
 * back) to a pinned host buffer on memento's copy stream, after the work queued so far on
 * `stream`. When the pointer is the start of a memento_malloc block, the block is marked as
 * used by the copy (memento_record_stream), so it may be freed at once; otherwise `stream`
 * waits for the copy. -1 when the id is unknown, the tensor is freed or already offloaded,
 * or the pinned host pool (MEMENTO_HOST_BUDGET) is exhausted: the caller keeps the tensor. */
int memento_offload(int64_t id, memento_stream_t stream);

/* memento_offload for a caller that keeps the tensor's storage allocated and unchanged until
 * the copy out has read it (memento_offload_done): neither `stream` waits for the copy nor is
 * a block marked, so the copy overlaps the caller's work. Same errors. */
int memento_offload_async(int64_t id, memento_stream_t stream);

/* 1 when the copy out of an offloaded tensor has completed (its storage may go), 0 while it
 * runs; with `block` nonzero it first waits for it. -1 when the id is unknown or the tensor is
 * not offloaded (ask before copying it back: a copy back ends the offload). */
int memento_offload_done(int64_t id, int block);

/* Copies an offloaded tensor back into `dst` (its bytes' worth, device memory, e.g. from
 * memento_malloc) on memento's copy stream, after the copy out and the work queued so far
 * on `stream`; later work on `stream` waits for it. `dst` becomes the tensor's pointer and
 * the host buffer goes back to the pool. -1 when the id is unknown or not offloaded. */
int memento_copy_back(int64_t id, void* dst, memento_stream_t stream);

/* The caller's compute since the previous point (register, use or free) that no region
 * accounts for, e.g. backward work between two uses: it advances the step's clock as a
 * region's seconds do. Without it a framework that registers regions only in its forward has
 * a backward of no duration, and the plan copies every offloaded tensor back during the
 * forward. -1 when no step is open or `seconds` is negative, NaN or infinite. */
int memento_note_seconds(double seconds);

/* The caller's count of the device bytes outside the registered tensors right now, for a
 * framework whose allocations memento does not see (PyTorch with its own allocator). From
 * then on in this step the points use the last count given instead of the allocator's active
 * bytes less the live tensors; memory an observed step leaves beyond what it started with is
 * the last count less the first. Forgotten at memento_step_begin. -1 when no step is open. */
int memento_note_other_bytes(size_t bytes);

/* The open step's measured peak of the memory the budget covers, as the caller counts it
 * (PyTorch: torch.cuda.max_memory_allocated over the step). When a step that followed the
 * plan peaked above the budget, memento_step_end plans again from the step observed with a
 * wider margin below the budget (the overshoot's share of the budget plus 2 points, at most
 * 50%, at most 4 times per program), so that what the prediction missed is learnt; the
 * margin starts again at 5% when another program is observed. -1 when no step is open. */
int memento_note_peak(size_t bytes);

/* The rates (bytes/s, both finite and > 0) the planner counts on for copies to the host and
 * back, instead of the backend's (unknown on the host and cuda backends, so that without
 * these nothing is offloaded); a caller measures them, e.g. with a timed copy to pinned
 * memory. As for the backend's, the planner gives copies half again as long. Both 0 returns
 * to the backend's rates. It applies to the next plan made and lasts until memento_shutdown.
 * -1 when a rate is negative, NaN or infinite, or only one of them is 0. */
int memento_set_link_bandwidth(double d2h_bytes_per_s, double h2d_bytes_per_s);

/* 1 when the open step follows the plan in force (memento_plan_action answers from it), 0
 * when it is observed (no plan yet, or it departed from the planned program), -1 when no
 * step is open. */
int memento_step_following(void);

/* Writes to `ids` up to `cap` ids of the open step's tensors whose copy back is due: offloaded
 * (memento_offload, not yet copied back) and planned to be copied back after the step's
 * current point (its last register, use or free) or an earlier one, in the order of those
 * points. The plan starts each copy back as late as the link (memento_set_link_bandwidth)
 * allows the tensor to be present for its next use: after the last point before the one from
 * which the plan counts it present. The caller copies each with memento_prefetch. A tensor is
 * named at most once per step. Returns how many it wrote: 0 when none is due, or when the
 * step does not follow a plan (memento_step_following). -1 when no step is open or `ids` is
 * NULL with `cap` > 0. */
int memento_prefetch_due(int64_t* ids, size_t cap);

/* memento_copy_back without the wait: copies an offloaded tensor back into `dst` on memento's
 * copy stream, after the copy out and the work queued so far on `stream`, but `stream` does
 * not wait for it: the copy's end is recorded for memento_wait_ready. `dst` becomes the
 * tensor's pointer (memento_tensor_use accepts it at once) and the host buffer goes back to
 * the pool once the copy has read it. When `dst` is the start of a memento_malloc block the
 * block is marked as used by the copy; other storage must not be freed before a stream that
 * frees it has waited (memento_wait_ready). -1 when the id is unknown, the tensor is not
 * offloaded, or `dst` is NULL. */
int memento_prefetch(int64_t id, void* dst, memento_stream_t stream);

/* Later work on `stream` waits for the tensor's copy back from memento_prefetch; 0 and
 * nothing to wait for when none is pending (it was never prefetched, the copy was seen done
 * at an earlier wait, or the tensor was freed or offloaded again). A C caller on the host
 * backend then needs memento_synchronize(stream) before reading the bytes. -1 when the id is
 * unknown. */
int memento_wait_ready(int64_t id, memento_stream_t stream);

/* Blocks until the work queued on `stream` (NULL: the default stream) has run: what a C
 * caller on the host backend needs before reading a copied-back tensor. 0 or -1. */
int memento_synchronize(memento_stream_t stream);

#ifdef __cplusplus
}
#endif

#endif /* MEMENTO_MEMENTO_H */
