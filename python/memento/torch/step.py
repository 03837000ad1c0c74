"""One training step under memento: what the saved-tensor hooks and the region hooks do.

Every saved activation becomes an Entry registered with libmemento; each pack (forward) and
each unpack (backward) is a use. In a step that follows memento's plan, the plan names for
each entry the use after which it is offloaded or discarded, and libmemento names the
copies back to start at each use (its prefetch schedule). A step without a plan in force is
observed: it runs as checkpointing every region (the safe plan), and memento plans from it
at its end. No policy lives here: the decisions are libmemento's."""

from __future__ import annotations

import ctypes
import time
import weakref
from typing import TYPE_CHECKING, Any, Optional

import torch

from memento._lib import KEEP, OBSERVED, OFFLOAD, RECOMPUTE, MementoError, StepStatsC
from memento.torch.entries import (
    DISCARDED, OFFLOADED, PREFETCHING, RELEASED, RESIDENT, Entry, Saved,
)  # fmt: skip
from memento.torch.errors import UnsupportedError
from memento.torch.measure import LiveBytes
from memento.torch.regions import Region
from memento.torch.stats import StepStats

if TYPE_CHECKING:
    from memento.torch.runtime import Runtime

_PREFETCH_BATCH = 16


def is_weight_cast(t: torch.Tensor) -> bool:
    """Autocast's low-precision copy of a parameter (or a view of one, as a linear saves the
    transposed weight): neither a parameter nor an activation."""
    if t._is_view() and t._base is not None:
        t = t._base
    fn = t.grad_fn
    if fn is None or type(fn).__name__ != "ToCopyBackward0":
        return False
    return any(
        type(n).__name__ == "AccumulateGrad" and isinstance(getattr(n, "variable", None), torch.nn.Parameter)
        for n, _ in fn.next_functions
    )


def _id(entry: Entry) -> int:
    assert entry.id is not None, "memento.torch: an entry of the open step has an id"
    return entry.id


class Step:
    def __init__(self, runtime: Runtime, auto: bool) -> None:
        self.runtime = runtime
        self.lib = runtime.lib
        self.device: torch.device = runtime.device
        self.cuda = self.device.type == "cuda"
        self.auto = auto
        self.index = len(runtime.history) + 1
        self.lib.call("memento_step_begin")
        self.open = True
        self.params = runtime.parameter_storages()
        self.entries: dict[int, Entry] = {}  # by storage address
        self.by_id: dict[int, Entry] = {}
        self.live: set[Entry] = set()
        self.region: Optional[Region] = None
        self.region_start = 0.0
        self.start = self.last_mark = time.perf_counter()
        self.alive_bytes = 0
        self.peak_bytes = 0
        self.tracked = self.tracked_bytes = 0
        self.offloaded = self.offloaded_bytes = self.discarded = 0
        self.recomputes = 0
        self.recompute_seconds = self.stall_seconds = 0.0
        self.retained = 0  # entries still saved at the step's end (a retained graph)
        self.pending: list[Entry] = []  # offloaded entries whose copy out may still run
        self._ids = (ctypes.c_int64 * _PREFETCH_BATCH)()
        # On the CPU, every storage the step makes, followed (Runtime(cpu_memory="all")).
        self.memory: Optional[LiveBytes] = None
        if self.cuda and not runtime.memento_allocator:
            torch.cuda.reset_peak_memory_stats(self.device)
        elif not self.cuda and runtime.cpu_memory == "all" and not auto:
            self.memory = LiveBytes()
            self.memory.__enter__()

    # ---- helpers -------------------------------------------------------------------------
    def stream(self) -> Optional[int]:
        return torch.cuda.current_stream(self.device).cuda_stream if self.cuda else None

    def sync_host(self) -> None:
        """On the CPU, torch frees storage with no stream order: wait for memento's copies."""
        if not self.cuda:
            self.lib.call("memento_synchronize", None)

    @property
    def following(self) -> bool:
        """libmemento's plan is in force: the step matches the planned program so far."""
        return self.open and self.lib.call("memento_step_following") == 1

    def observing(self) -> bool:
        return not self.following

    def note_time(self) -> None:
        """The program's compute since the last point, outside regions, on memento's clock."""
        if self.region is not None or not self.open:
            return
        if self.cuda and self.observing():
            torch.cuda.synchronize(self.device)
        now = time.perf_counter()
        self.lib.call("memento_note_seconds", max(0.0, now - self.last_mark))
        self.last_mark = now

    def note_memory(self) -> None:
        """The memory outside the tracked storages, where it can be known (cuda's allocator
        statistics; on the CPU, the storages the step made when they are followed)."""
        if not self.open:
            return
        if self.cuda and not self.runtime.memento_allocator:
            other = torch.cuda.memory_allocated(self.device) - self.alive_bytes
        elif self.memory is not None:
            other = self.memory.live - self.alive_bytes
        else:
            return
        self.lib.call("memento_note_other_bytes", max(0, other))

    def measured_peak(self) -> int:
        """The step's peak of what the budget covers (see Runtime)."""
        if self.cuda and not self.runtime.memento_allocator:
            return int(torch.cuda.max_memory_allocated(self.device))
        if self.memory is not None:
            return self.memory.peak
        return self.peak_bytes

    def watch(self, entry: Entry, storage: Any) -> None:
        """Counts `storage` as alive until it dies (whoever held it last)."""
        nbytes = entry.nbytes

        def died(_: Any, step: Step = self) -> None:
            step.alive_bytes -= nbytes

        entry.storage = storage
        entry.storage_ref = weakref.ref(storage, died)
        entry.watched.append(entry.storage_ref)  # every storage it had, until each dies
        self.alive_bytes += nbytes
        self.peak_bytes = max(self.peak_bytes, self.alive_bytes)

    def trackable(self, t: torch.Tensor) -> bool:
        if t.device != self.device or t.layout != torch.strided or t.is_sparse:
            return False
        # A storage view cannot carry conjugate or negative bits, nor a subclass's type.
        if type(t) is not torch.Tensor or t.is_conj() or t.is_neg():
            return False
        base = t._base if t._is_view() and t._base is not None else t
        if isinstance(base, torch.nn.Parameter):  # FSDP2's unsharded parameters among them
            return False
        storage = t.untyped_storage()
        if storage.nbytes() == 0 or storage.nbytes() < self.runtime.min_bytes:
            return False
        if storage.data_ptr() in self.params:
            return False
        return not is_weight_cast(t)

    def lookup(self, t: torch.Tensor) -> Optional[Entry]:
        entry = self.entries.get(t.untyped_storage().data_ptr())
        if entry is not None and entry.state != RELEASED and entry.same_storage(t):
            return entry
        return None

    def register(self, t: torch.Tensor) -> Entry:
        entry = Entry(self, t, None)
        storage = t.untyped_storage()
        entry.id = self.lib.call(
            "memento_tensor_register", storage.data_ptr(), entry.nbytes, self.stream()
        )
        self.watch(entry, storage)
        self.entries[storage.data_ptr()] = entry
        self.by_id[entry.id] = entry
        self.live.add(entry)
        self.tracked += 1
        self.tracked_bytes += entry.nbytes
        if self.following:
            action, after = ctypes.c_int(), ctypes.c_uint32()
            self.lib.call("memento_plan_action", entry.id, ctypes.byref(action), ctypes.byref(after))
            entry.action, entry.after_use = action.value, after.value
        return entry

    # ---- the saved-tensor hooks ----------------------------------------------------------
    def pack(self, t: torch.Tensor) -> Any:
        region = self.region
        index = -1
        if region is not None:
            index = region.packs
            region.packs += 1
        if not self.open or not self.trackable(t):
            return t
        self.settle()
        self.note_time()
        entry = self.lookup(t)
        if entry is None:
            entry = self.register(t)
            if region is not None:
                region.add_output(entry, index)
        elif entry.state != RESIDENT:  # the program still holds it: take it back
            self.adopt(entry, t)
        saved = Saved(entry, t)
        self.use(entry)
        self.note_memory()
        return saved

    def unpack(self, saved: Saved) -> torch.Tensor:
        if torch.is_grad_enabled():  # backward(create_graph=True)
            raise UnsupportedError(
                "memento.torch does not support double backward (create_graph=True): the saved "
                "tensors it restores carry no autograd history, so higher-order gradients would "
                "be wrong. Run that step without memento (Runtime.detach(), or outside rt.step())"
            )
        entry = saved.entry
        if entry.id is None or not self.open:  # kept past its step: resident
            return saved.view()
        self.settle()
        self.note_time()
        self.materialize(entry)
        entry.check_version(saved.version, "autograd needs the value it saved")
        self.use(entry)
        out = saved.view()
        self.prefetch()
        self.note_memory()
        return out

    def input_entry(self, t: torch.Tensor) -> Optional[Entry]:
        """A region's input, registered (and used) so that it can be offloaded too."""
        if not self.open or not self.trackable(t):
            return None
        entry = self.lookup(t)
        if entry is None:
            entry = self.register(t)
        elif entry.state != RESIDENT:
            self.adopt(entry, t)
        self.use(entry)
        return entry

    # ---- carrying the plan out -----------------------------------------------------------
    def use(self, entry: Entry) -> None:
        self.lib.call("memento_tensor_use", entry.id)
        entry.uses += 1
        if self.following and entry.action != KEEP and entry.uses == entry.after_use + 1:
            self.evict(entry, entry.action)

    def evict(self, entry: Entry, action: int) -> None:
        entry.check_version(entry.version, "memento cannot offload or recompute it")
        if action == OFFLOAD:
            # Under memento's allocator the copy holds the block; otherwise memento keeps the
            # storage until the copy has read it (settle), so the copy overlaps the compute.
            asynchronous = self.runtime.async_offload and not self.runtime.memento_allocator
            try:
                call = "memento_offload_async" if asynchronous else "memento_offload"
                self.lib.call(call, entry.id, self.stream())
            except MementoError as error:  # the pinned pool is full: the tensor stays
                self.runtime.warn_once("offload", f"memento.torch: keeping a tensor: {error}")
                return
            if asynchronous:
                entry.pending = entry.storage
                self.pending.append(entry)
            else:
                self.sync_host()
            entry.state = OFFLOADED
            self.offloaded += 1
            self.offloaded_bytes += entry.nbytes
        elif action == RECOMPUTE:
            if entry.region is None or entry.region.leaves is None:
                return  # nothing can recompute it
            entry.state = DISCARDED
            self.discarded += 1
        else:
            raise MementoError(f"memento.torch: unknown plan action {action}")
        entry.storage = entry.alias = None  # the memory comes back once the program drops its own

    def settle(self) -> None:
        """Lets go of the storages whose copies out have completed."""
        if not self.pending:
            return
        still = []
        for entry in self.pending:
            if entry.pending is None:
                continue
            if entry.state == OFFLOADED and self.lib.call("memento_offload_done", entry.id, 0) == 0:
                still.append(entry)
            else:
                entry.pending = None
        self.pending = still

    def finish_offload(self, entry: Entry) -> None:
        """Waits for the entry's copy out (before its copy back, or its storage's release)."""
        if entry.pending is not None:
            if entry.state == OFFLOADED and entry.id is not None:
                self.lib.call("memento_offload_done", entry.id, 1)
            entry.pending = None

    def materialize(self, entry: Entry) -> None:
        """Brings an evicted entry back (a copy back, or its region's recompute)."""
        if entry.state == RESIDENT:
            return
        if entry.state == RELEASED:
            raise MementoError(f"memento.torch: saved tensor {entry.name} was released")
        start = time.perf_counter()
        if entry.state == PREFETCHING:
            self.lib.call("memento_wait_ready", entry.id, self.stream())
            self.sync_host()
            entry.state = RESIDENT
            self.stall_seconds += time.perf_counter() - start
        elif entry.state == OFFLOADED:
            self.finish_offload(entry)
            dst = torch.empty(entry.nbytes, dtype=torch.uint8, device=self.device)
            self.lib.call("memento_copy_back", entry.id, dst.data_ptr(), self.stream())
            self.sync_host()
            self.restored(entry, dst)
            self.stall_seconds += time.perf_counter() - start
        elif entry.state == DISCARDED:
            assert entry.region is not None
            self.recompute_seconds += entry.region.recompute(entry, everything=self.observing())
            self.recomputes += 1
        self.last_mark = time.perf_counter()  # waits and recomputes are not program time

    def restored(self, entry: Entry, tensor: torch.Tensor) -> None:
        """`tensor`'s storage holds the entry's bytes again."""
        self.watch(entry, tensor.untyped_storage())
        entry.state = RESIDENT  # a copy: its version is not the original's (alias stays None)

    def adopt(self, entry: Entry, t: torch.Tensor) -> None:
        """An evicted entry whose storage the program still holds, saved again."""
        if entry.state in (OFFLOADED, PREFETCHING):
            # Its pinned copy goes back to the pool; the bytes written are the same.
            if entry.state == OFFLOADED:
                self.finish_offload(entry)
                self.lib.call("memento_copy_back", entry.id, t.untyped_storage().data_ptr(),
                              self.stream())  # fmt: skip
            else:
                self.lib.call("memento_wait_ready", entry.id, self.stream())
            self.sync_host()
        entry.storage = t.untyped_storage()
        entry.alias = t.detach()
        entry.state = RESIDENT

    def prefetch(self) -> None:
        """Starts the copies back libmemento's schedule has due at this point."""
        if not self.following:
            return
        while True:
            n = self.lib.call("memento_prefetch_due", self._ids, _PREFETCH_BATCH)
            for k in range(n):
                entry = self.by_id.get(self._ids[k])
                if entry is None or entry.state != OFFLOADED:
                    continue
                self.finish_offload(entry)
                dst = torch.empty(entry.nbytes, dtype=torch.uint8, device=self.device)
                self.lib.call("memento_prefetch", entry.id, dst.data_ptr(), self.stream())
                self.watch(entry, dst.untyped_storage())
                entry.state = PREFETCHING
            if n < _PREFETCH_BATCH:
                return

    # ---- regions -------------------------------------------------------------------------
    def region_enter(self, module: torch.nn.Module, name: str, args: tuple[Any, ...],
                     kwargs: dict[str, Any]) -> None:  # fmt: skip
        if self.region is not None or not self.open or not torch.is_grad_enabled():
            return  # a region inside a region is part of it
        self.note_time()
        region = Region(self, module, name, args, kwargs)
        if self.cuda and self.observing():
            torch.cuda.synchronize(self.device)
        self.region = region
        self.region_start = time.perf_counter()

    def region_exit(self, module: torch.nn.Module) -> None:
        region = self.region
        if region is None or region.module is not module:
            return
        if self.cuda and self.observing():
            torch.cuda.synchronize(self.device)
        now = time.perf_counter()
        region.seconds = now - self.region_start
        self.region = None
        self.last_mark = now
        if not region.outputs:
            region.release()
            self.lib.call("memento_note_seconds", region.seconds)
            return
        outputs = (ctypes.c_int64 * len(region.outputs))(*[_id(e) for e in region.outputs])
        ids = list(dict.fromkeys(_id(e) for e in region.input_entries))
        inputs = (ctypes.c_int64 * len(ids))(*ids)
        self.lib.call("memento_region_register", outputs, len(region.outputs), inputs, len(ids),
                      region.seconds)  # fmt: skip
        if region.live_outputs == 0:  # every output died inside the region's own forward
            region.release()
            return
        if self.observing():  # the safe plan while memento watches: checkpoint the region
            for entry in region.outputs:
                if entry.state == RESIDENT:
                    self.evict(entry, RECOMPUTE)

    # ---- the end of a tensor, and of the step --------------------------------------------
    def release(self, entry: Entry) -> None:
        """No handle and no region holds the entry any more."""
        if entry.state == RELEASED:
            return
        if entry.state == PREFETCHING and entry.id is not None and self.open:
            # Its copy back still writes the storage: the allocator must not hand it out first.
            self.lib.call("memento_wait_ready", entry.id, self.stream())
            self.sync_host()
        if self.open:
            self.finish_offload(entry)
        if entry.id is not None and self.open:
            self.lib.call("memento_tensor_free", entry.id)
        entry.state = RELEASED
        entry.storage = entry.alias = None
        self.live.discard(entry)
        if entry.region is not None:
            entry.region.output_released()
            entry.region = None
        if self.auto and self.open and not self.live and not self.runtime.in_forward:
            self.runtime.end_step(self)

    def end(self, keep: bool = True) -> StepStats:
        """Closes the step: entries still held (a retained graph) are brought back first, so
        that nothing is lost, and then outlive the step untracked. `keep=False` (an abandoned
        step, whose graph is being dropped) brings nothing back. The step is closed with
        libmemento whatever fails on the way."""
        self.retained = len(self.live)
        stats = StepStatsC()
        try:
            if keep:
                for entry in list(self.live):
                    if entry.state != RESIDENT:
                        self.materialize(entry)
            for entry in list(self.pending):  # copies out in flight end before the step
                self.finish_offload(entry)
            for entry in self.live:  # copies back in flight end before the step
                if entry.state == PREFETCHING:
                    self.lib.call("memento_wait_ready", entry.id, self.stream())
                    self.sync_host()
                    entry.state = RESIDENT
        finally:
            if self.memory is not None:
                self.memory.__exit__(None, None, None)
            peak = self.measured_peak()
            self.open = False
            try:
                self.lib.call("memento_note_peak", peak)
            finally:
                self.lib.call("memento_step_end", ctypes.byref(stats))
                for entry in self.live:
                    entry.id = None
                    if entry.state != RESIDENT:  # abandoned: nothing can bring it back
                        entry.state = RELEASED
        seconds = time.perf_counter() - self.start
        return StepStats(
            step=self.index,
            phase="observed" if stats.phase == OBSERVED else "planned",
            new_plan=bool(stats.new_plan),
            budget=self.runtime.budget,
            peak_bytes=peak,
            seconds=seconds,
            tracked=self.tracked,
            tracked_bytes=self.tracked_bytes,
            offloaded=self.offloaded,
            offloaded_bytes=self.offloaded_bytes,
            discarded=self.discarded,
            recomputes=self.recomputes,
            recompute_seconds=self.recompute_seconds,
            stall_seconds=self.stall_seconds,
            plan_fits=bool(stats.fits),
            plan_kept=stats.kept,
            plan_offloaded=stats.offloaded,
            plan_recomputed=stats.recomputed,
            plan_offloaded_bytes=stats.offloaded_bytes,
            plan_recomputed_bytes=stats.recomputed_bytes,
            predicted_peak=stats.predicted_peak,
            predicted_extra_seconds=stats.predicted_extra_seconds,
            plan_cpu_seconds=stats.plan_cpu_seconds,
            margin=stats.margin,
            retained=self.retained,
        )

    def defer_error(self, error: BaseException) -> None:
        self.runtime.pending_errors.append(error)

