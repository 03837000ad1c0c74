/* The decision-only planning API driven from C as a framework would drive it: a training-like
 * step of 16 layers (forward: an activation per layer, made by a region from the one before;
 * backward: a gradient per layer, the activations used in reverse and freed), observed once,
 * then planned; the plan carried out by the test itself within a budget that needs it, an
 * offload round trip compared byte for byte, and bad input. On the host backend device memory
 * is host memory, so the test's CPU writes stand in for kernels. Then, with link rates given
 * and the caller's seconds and other bytes noted, a tensor offloaded by the plan and
 * prefetched when the plan's schedule says.
 * Run with MEMENTO_DEVICE=host:256MiB MEMENTO_BUDGET=64MiB (see tests/CMakeLists.txt). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "memento/memento.h"

#define LAYERS 16
#define BYTES ((size_t)2 << 20)
#define TIGHT_BUDGET ((size_t)24 << 20)
#define SMALL ((size_t)4 << 20)
#define LARGE ((size_t)6 << 20)

static int failures = 0;

#define CHECK(cond, what)                                                                       \
  do {                                                                                          \
    if (!(cond)) {                                                                              \
      fprintf(stderr, "%s:%d: %s: CHECK(%s) failed (last error: \"%s\")\n", __FILE__, __LINE__, \
              what, #cond, memento_last_error());                                               \
      ++failures;                                                                               \
    }                                                                                           \
  } while (0)

/* A call that must fail with -1 and a last error containing `part`. */
#define CHECK_FAILS(call, part)                                                                 \
  do {                                                                                          \
    int rc_ = (int)(call);                                                                      \
    if (rc_ != -1 || strstr(memento_last_error(), part) == NULL) {                              \
      fprintf(stderr, "%s:%d: %s returned %d with last error \"%s\"; expected -1 and \"%s\"\n", \
              __FILE__, __LINE__, #call, rc_, memento_last_error(), part);                      \
      ++failures;                                                                               \
    }                                                                                           \
  } while (0)

enum { PRESENT, DISCARDED, OFFLOADED };

typedef struct Tensor {
  unsigned char* ptr;
  int64_t id;
  int layer; /* what its bytes are a function of */
  int action;
  uint32_t after_use;
  uint32_t uses;
  int state;
} Tensor;

static unsigned char pattern(int layer, size_t k) {
  return (unsigned char)((size_t)layer * 31u + k * 7u + (k >> 11));
}

static unsigned char* device_alloc(int layer) {
  size_t k;
  unsigned char* p = (unsigned char*)memento_malloc((ssize_t)BYTES, 0, NULL);
  if (p == NULL) {
    fprintf(stderr, "memento_malloc of layer %d failed: %s\n", layer, memento_last_error());
    exit(1); /* nothing after this could run meaningfully */
  }
  for (k = 0; k < BYTES; ++k) p[k] = pattern(layer, k);
  return p;
}

static void device_free(unsigned char* p) { memento_free(p, (ssize_t)BYTES, 0, NULL); }

static int holds_layer(const unsigned char* p, int layer) {
  size_t k;
  for (k = 0; k < BYTES; ++k)
    if (p[k] != pattern(layer, k)) return 0;
  return 1;
}

static double region_seconds(int layer) { return 1e-3 * (1.0 + (double)(layer % 4)); }

static void make(Tensor* t, int layer) {
  memset(t, 0, sizeof *t);
  t->layer = layer;
  t->ptr = device_alloc(layer);
  t->id = memento_tensor_register(t->ptr, BYTES, NULL);
  CHECK(t->id >= 0, "register");
  CHECK(memento_plan_action(t->id, &t->action, &t->after_use) == 0, "plan action");
}

/* Brings an evicted tensor back before its next use: a recompute reruns its region (the
 * test's fill from the same pattern, after its own input when that is away too), a copy back
 * reads the offloaded bytes. */
static void restore(Tensor* acts, int i) {
  Tensor* t = &acts[i];
  if (t->state == DISCARDED) {
    if (i > 0 && acts[i - 1].state != PRESENT) restore(acts, i - 1);
    t->ptr = device_alloc(t->layer);
  } else if (t->state == OFFLOADED) {
    t->ptr = (unsigned char*)memento_malloc((ssize_t)BYTES, 0, NULL);
    CHECK(t->ptr != NULL, "malloc for copy back");
    CHECK(memento_copy_back(t->id, t->ptr, NULL) == 0, "copy back");
    CHECK(memento_synchronize(NULL) == 0, "synchronize");
  }
  t->state = PRESENT;
}

/* A use in program order, then the plan's eviction when this was the use it follows. */
static void use(Tensor* acts, int i) {
  Tensor* t = &acts[i];
  restore(acts, i);
  CHECK(holds_layer(t->ptr, t->layer), "the tensor's bytes at its use");
  CHECK(memento_tensor_use(t->id) == 0, "use");
  ++t->uses;
  if (t->action == MEMENTO_KEEP || t->uses != t->after_use + 1) return;
  if (t->action == MEMENTO_OFFLOAD) {
    if (memento_offload(t->id, NULL) != 0) return; /* the pool is full: keep it */
    t->state = OFFLOADED;
  } else {
    t->state = DISCARDED;
  }
  device_free(t->ptr);
  t->ptr = NULL;
}

static void release(Tensor* t) {
  if (t->ptr != NULL) device_free(t->ptr);
  t->ptr = NULL;
  CHECK(memento_tensor_free(t->id) == 0, "free");
}

/* One step. With `offload_layer` > 0, that activation is offloaded after its forward use
 * whatever the plan says, and copied back at its backward use; the bytes are compared with a
 * copy saved before the offload. */
static memento_step_stats run_step(int offload_layer) {
  Tensor acts[LAYERS + 1]; /* acts[0] is the input batch: no region, kept or offloaded only */
  Tensor grads[2];
  unsigned char* saved = NULL;
  memento_step_stats stats;
  int l, g = 0;
  memset(&stats, 0, sizeof stats);
  CHECK(memento_step_begin() == 0, "step begin");

  make(&acts[0], 0);
  for (l = 1; l <= LAYERS; ++l) {
    make(&acts[l], l);
    use(acts, l - 1);
    CHECK(memento_region_register(&acts[l].id, 1, &acts[l - 1].id, 1, region_seconds(l)) == 0,
          "region");
  }
  use(acts, LAYERS); /* the loss */

  if (offload_layer > 0) {
    Tensor* t = &acts[offload_layer];
    CHECK(t->action == MEMENTO_KEEP && t->state == PRESENT, "an ample budget keeps everything");
    saved = (unsigned char*)malloc(BYTES);
    memcpy(saved, t->ptr, BYTES);
    CHECK(memento_offload(t->id, NULL) == 0, "offload");
    CHECK_FAILS(memento_offload(t->id, NULL), "already offloaded");
    CHECK_FAILS(memento_tensor_use(t->id), "is offloaded");
    device_free(t->ptr); /* at once: the copy still reading it holds the block */
    t->ptr = NULL;
    t->state = OFFLOADED;
  }

  for (l = LAYERS; l >= 1; --l) {
    Tensor* grad = &grads[g];
    int64_t inputs[2];
    make(grad, 100 + l);
    inputs[0] = acts[l].id;
    inputs[1] = l < LAYERS ? grads[1 - g].id : acts[l].id;
    if (l == offload_layer) {
      restore(acts, l);
      CHECK(memcmp(acts[l].ptr, saved, BYTES) == 0, "the copy back is bit-identical");
      CHECK_FAILS(memento_copy_back(acts[l].id, acts[l].ptr, NULL), "not offloaded");
    }
    use(acts, l);
    if (l == 1) use(acts, 0); /* the first layer's weight gradient reads the input */
    if (l < LAYERS) {
      CHECK(memento_tensor_use(grads[1 - g].id) == 0, "use of a gradient");
      release(&grads[1 - g]);
    }
    CHECK(memento_region_register(&grad->id, 1, inputs, l < LAYERS ? 2 : 1,
                                  2 * region_seconds(l)) == 0,
          "backward region");
    release(&acts[l]);
    g = 1 - g;
  }
  release(&grads[1 - g]);
  release(&acts[0]);
  free(saved);
  CHECK(memento_step_end(&stats) == 0, "step end");
  return stats;
}

static void bad_input(void) {
  Tensor x;
  int64_t unknown;
  int action = -1;
  uint32_t after_use = 0;
  CHECK(memento_step_begin() == 0, "step begin");
  CHECK_FAILS(memento_step_begin(), "already open");
  make(&x, 0);
  unknown = x.id + 1000;
  CHECK_FAILS(memento_tensor_use(unknown), "unknown tensor id");
  CHECK_FAILS(memento_tensor_use(-1), "unknown tensor id -1");
  CHECK_FAILS(memento_plan_action(unknown, &action, &after_use), "not registered");
  CHECK_FAILS(memento_region_register(&x.id, 1, &unknown, 1, 1e-3), "unknown input id");
  CHECK_FAILS(memento_region_register(&unknown, 1, &x.id, 1, 1e-3), "unknown output id");
  CHECK_FAILS(memento_region_register(&x.id, 0, NULL, 0, 1e-3), "at least one output");
  CHECK_FAILS(memento_region_register(&x.id, 1, NULL, 0, -1.0), "finite seconds >= 0");
  CHECK_FAILS(memento_region_register(&x.id, 1, NULL, 0, nan("")), "finite seconds >= 0");
  CHECK_FAILS(memento_region_register(&x.id, 1, &x.id, 1, 1e-3), "both an input and an output");
  CHECK_FAILS(memento_copy_back(x.id, x.ptr, NULL), "not offloaded");
  CHECK_FAILS(memento_tensor_register(NULL, BYTES, NULL), "must not be NULL");
  CHECK_FAILS(memento_tensor_register(x.ptr, 0, NULL), "must be positive");
  CHECK_FAILS(memento_plan_action(x.id, NULL, &after_use), "null output pointer");
  CHECK(memento_plan_action(x.id, &action, &after_use) == 0 && action == MEMENTO_KEEP,
        "the input has no region: kept");
  release(&x);
  CHECK_FAILS(memento_tensor_use(x.id), "was freed");
  CHECK_FAILS(memento_tensor_free(x.id), "was freed");
  CHECK(memento_step_end(NULL) == 0, "step end");
  CHECK_FAILS(memento_step_end(NULL), "no step is open");
  CHECK_FAILS(memento_tensor_use(x.id), "no step is open");
  CHECK(memento_step_begin() == 0, "step begin");
  CHECK_FAILS(memento_tensor_use(x.id), "it is from step");
  CHECK(memento_step_end(NULL) == 0, "step end");
}

/* One step of a program whose storage memento does not see (malloc'd): A (4 MiB) made and
 * used, then B and C (6 MiB) made, used and freed, then A used again; the caller notes 0.1 s
 * of compute after A's use, after C's and after their frees, and 1 MiB of other device bytes.
 * Points: 0 A, 1 use A, 2 B, 3 C, 4 use B, 5 use C, 6 free C, 7 free B, 8 use A, 9 free A.
 * Under 16 MiB with the link rates given, A is offloaded after its first use; the step
 * carries the plan out and prefetches A when memento_prefetch_due names it, which must be
 * after point `due_at` and nowhere else (`due_at` < 0: never). */
static memento_step_stats offload_step(int expect_following, int due_at) {
  memento_step_stats stats;
  unsigned char *a = (unsigned char*)malloc(SMALL), *back = NULL;
  unsigned char* b = (unsigned char*)malloc(LARGE);
  unsigned char* c = (unsigned char*)malloc(LARGE);
  int64_t ia, ib, ic, due[4];
  int action = -1, point = 0, offloaded = 0, n;
  uint32_t after_use = 0;
  size_t k;
  memset(&stats, 0, sizeof stats);
  for (k = 0; k < SMALL; ++k) a[k] = pattern(7, k);
  CHECK(memento_step_begin() == 0, "step begin");
  CHECK(memento_note_other_bytes((size_t)1 << 20) == 0, "note other bytes");
  ia = memento_tensor_register(a, SMALL, NULL);
  CHECK(memento_step_following() == expect_following, "following the plan");
  CHECK(memento_tensor_use(ia) == 0, "use of A");
  point = 1;
  CHECK(memento_plan_action(ia, &action, &after_use) == 0, "plan action");
  if (expect_following) CHECK(action == MEMENTO_OFFLOAD && after_use == 0, "A is offloaded");
  if (action == MEMENTO_OFFLOAD) {
    CHECK(memento_offload(ia, NULL) == 0, "offload");
    CHECK(memento_synchronize(NULL) == 0, "synchronize"); /* the copy out has read A */
    memset(a, 0, SMALL);
    offloaded = 1;
  }
  CHECK(memento_note_seconds(0.1) == 0, "note seconds");
  ib = memento_tensor_register(b, LARGE, NULL);
  ic = memento_tensor_register(c, LARGE, NULL);
  CHECK(memento_tensor_use(ib) == 0 && memento_tensor_use(ic) == 0, "uses of B and C");
  CHECK(memento_prefetch_due(due, 4) == 0, "nothing due before point 6");
  CHECK(memento_note_seconds(0.1) == 0, "note seconds");
  CHECK(memento_tensor_free(ic) == 0, "free C");
  n = memento_prefetch_due(due, 4);
  CHECK(n == (due_at == 6), "due after point 6");
  CHECK(memento_tensor_free(ib) == 0, "free B");
  point = 7;
  n = memento_prefetch_due(due, 4);
  CHECK(n == (point == due_at), "due after point 7");
  if (n == 1) {
    CHECK(due[0] == ia, "A is due");
    back = (unsigned char*)malloc(SMALL);
    memset(back, 0xee, SMALL);
    CHECK(memento_prefetch(ia, back, NULL) == 0, "prefetch");
    offloaded = 0;
    CHECK(memento_prefetch_due(due, 4) == 0, "named once");
  }
  CHECK(memento_note_seconds(0.1) == 0, "note seconds");
  if (offloaded) { /* not prefetched: copied back at the use */
    back = (unsigned char*)malloc(SMALL);
    CHECK(memento_copy_back(ia, back, NULL) == 0, "copy back");
  }
  if (back != NULL) {
    CHECK(memento_wait_ready(ia, NULL) == 0, "wait ready");
    CHECK(memento_synchronize(NULL) == 0, "synchronize");
    for (k = 0; k < SMALL && back[k] == pattern(7, k); ++k) {
    }
    CHECK(k == SMALL, "the prefetched bytes are bit-identical");
  }
  CHECK(memento_tensor_use(ia) == 0, "use of A");
  CHECK(memento_tensor_free(ia) == 0, "free A");
  CHECK(memento_prefetch_due(due, 4) == 0, "nothing due after");
  CHECK(memento_note_peak(SMALL) == 0, "note peak"); /* within any budget: the plan stands */
  CHECK(memento_step_end(&stats) == 0, "step end");
  free(a);
  free(b);
  free(c);
  free(back);
  return stats;
}

static void link_and_prefetch(void) {
  memento_step_stats s;
  int64_t id, due[2];
  unsigned char* bytes = (unsigned char*)malloc(SMALL);
  CHECK_FAILS(memento_note_seconds(1.0), "no step is open");
  CHECK_FAILS(memento_note_other_bytes(1), "no step is open");
  CHECK_FAILS(memento_note_peak(1), "no step is open");
  CHECK_FAILS(memento_offload_async(0, NULL), "no step is open");
  CHECK_FAILS(memento_offload_done(0, 1), "no step is open");
  CHECK_FAILS(memento_step_following(), "no step is open");
  CHECK_FAILS(memento_prefetch_due(due, 2), "no step is open");
  CHECK_FAILS(memento_set_link_bandwidth(-1.0, 1e9), "d2h_bytes_per_s must be finite");
  CHECK_FAILS(memento_set_link_bandwidth(1e9, 0.0), "both rates are > 0, or both 0");
  CHECK(memento_set_link_bandwidth(1e9, 1e9) == 0, "link rates");
  CHECK(memento_set_budget((size_t)16 << 20) == 0, "set budget");

  s = offload_step(0, -1);
  printf("offload step 1: phase %d, offload %zu, predicted peak %zu, %.3f s\n", s.phase,
         s.offloaded, s.predicted_peak, s.observed_seconds);
  CHECK(s.phase == MEMENTO_STEP_OBSERVED && s.offloaded == 1 && s.fits == 1, "A is offloaded");
  CHECK(s.predicted_peak == ((size_t)13 << 20), "1 MiB noted besides B and C");
  CHECK(fabs(s.observed_seconds - 0.3) < 1e-9, "the noted seconds are the step's clock");
  s = offload_step(1, 7);
  CHECK(s.phase == MEMENTO_STEP_PLANNED, "the second step follows the plan");

  CHECK(memento_step_begin() == 0, "step begin");
  CHECK_FAILS(memento_note_seconds(-1.0), "seconds must be finite and >= 0");
  CHECK_FAILS(memento_prefetch_due(NULL, 2), "ids is NULL with cap 2");
  id = memento_tensor_register(bytes, SMALL, NULL);
  CHECK_FAILS(memento_prefetch(id, bytes, NULL), "not offloaded");
  CHECK(memento_wait_ready(id, NULL) == 0, "nothing to wait for");
  CHECK(memento_offload(id, NULL) == 0, "offload");
  CHECK_FAILS(memento_prefetch(id, NULL, NULL), "destination must not be NULL");
  CHECK_FAILS(memento_wait_ready(id + 1000, NULL), "unknown tensor id");
  CHECK(memento_synchronize(NULL) == 0, "synchronize"); /* the copy out has read `bytes` */
  CHECK(memento_step_end(NULL) == 0, "step end");
  CHECK(memento_set_link_bandwidth(0.0, 0.0) == 0, "the backend's rates again");
  free(bytes);
}

int main(void) {
  memento_step_stats s;
  const size_t ample = memento_get_budget();
  CHECK(ample >= (LAYERS + 3) * BYTES, "MEMENTO_BUDGET holds a whole step");
  CHECK_FAILS(memento_step_end(NULL), "no step is open");

  s = run_step(0);
  printf("step 1: phase %d, new plan %d, %zu tensors, recompute %zu (%zu bytes)\n", s.phase,
         s.new_plan, s.tensors, s.recomputed, s.recomputed_bytes);
  CHECK(s.phase == MEMENTO_STEP_OBSERVED && s.new_plan == 1, "the first step is observed");
  CHECK(s.tensors == 1 + 2 * LAYERS && s.tensor_bytes == s.tensors * BYTES, "tensors counted");
  CHECK(s.recomputed == 0 && s.offloaded == 0 && s.kept > 0 && s.fits == 1 && s.budget == ample,
        "an ample budget evicts nothing");
  CHECK(s.observed_seconds > 0 && s.plan_cpu_seconds >= 0, "seconds");

  s = run_step(5);
  CHECK(s.phase == MEMENTO_STEP_PLANNED && s.new_plan == 0, "the second step is planned");

  CHECK(memento_set_budget(TIGHT_BUDGET) == 0, "set budget");
  s = run_step(0);
  printf(
      "step 3 at %zu MiB: phase %d, new plan %d, recompute %zu (%zu bytes), predicted peak "
      "%zu, +%.3f s\n",
      TIGHT_BUDGET >> 20, s.phase, s.new_plan, s.recomputed, s.recomputed_bytes, s.predicted_peak,
      s.predicted_extra_seconds);
  CHECK(s.phase == MEMENTO_STEP_PLANNED && s.new_plan == 1,
        "a planned step replans for a new budget");
  CHECK(s.recomputed > 0 && s.recomputed_bytes > 0 && s.fits == 1 && s.budget == TIGHT_BUDGET,
        "a tight budget recomputes");
  CHECK(s.predicted_peak <= TIGHT_BUDGET && s.predicted_extra_seconds > 0, "the plan's cost");

  s = run_step(0);
  CHECK(s.phase == MEMENTO_STEP_PLANNED && s.new_plan == 0 && s.recomputed > 0, "the plan stands");

  bad_input();
  link_and_prefetch();
  memento_shutdown();
  CHECK_FAILS(memento_step_end(NULL), "no step is open"); /* a fresh instance */
  memento_shutdown();

  if (failures > 0) {
    fprintf(stderr, "%d check(s) failed\n", failures);
    return 1;
  }
  printf("plan API from C: all checks passed\n");
  return 0;
}
