"""Regions: modules whose saved tensors memento may drop and get back by rerunning the
module, as torch.utils.checkpoint(use_reentrant=False) does. A region keeps its inputs
(tensors as memento entries, so they can be offloaded too), the RNG and autocast state at
its entry, and which of its packs first saved each tensor it produced; a recompute reruns
the module and restores the discarded tensor asked for from it."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Optional

import torch
from torch.utils._pytree import tree_flatten, tree_unflatten

from memento.torch.entries import DISCARDED, Entry, Saved
from memento.torch.errors import UnsupportedError

if TYPE_CHECKING:
    from memento.torch.step import Step


def autocast_state(device_type: str) -> tuple[bool, torch.dtype]:
    """Whether autocast is on for `device_type` and its dtype (PyTorch 2.1 and later)."""
    if hasattr(torch, "get_autocast_dtype"):  # 2.4 and later
        return torch.is_autocast_enabled(device_type), torch.get_autocast_dtype(device_type)
    if device_type == "cuda":
        return torch.is_autocast_enabled(), torch.get_autocast_gpu_dtype()
    return torch.is_autocast_cpu_enabled(), torch.get_autocast_cpu_dtype()


def _check_leaf_version(leaf: torch.Tensor, saved: int, region: str) -> None:
    if leaf._version != saved:
        raise UnsupportedError(
            f"memento.torch: an input of region {region} was modified by an in-place operation "
            f"after the region ran (version {leaf._version}, at the region {saved}); rerunning "
            "it would give other values. Make the in-place operation out of place."
        )


def _never_unpacked(_: None) -> torch.Tensor:
    raise AssertionError("memento.torch: a region's rerun is not backpropagated")


class Region:
    """One run of a region module in a step."""

    def __init__(self, step: Step, module: torch.nn.Module, name: str, args: tuple[Any, ...],
                 kwargs: dict[str, Any]) -> None:  # fmt: skip
        self.step = step
        self.module = module
        self.name = name
        self.device = step.device
        leaves, self.spec = tree_flatten((args, kwargs))
        self.leaves: Optional[list[Any]] = []
        self.requires_grad: list[bool] = []
        self.input_entries: list[Entry] = []
        self.versions: list[int] = []  # each leaf's version at the region's entry (-1: none)
        for leaf in leaves:
            self.requires_grad.append(isinstance(leaf, torch.Tensor) and leaf.requires_grad)
            entry = step.input_entry(leaf) if isinstance(leaf, torch.Tensor) else None
            self.versions.append(leaf._version if isinstance(leaf, torch.Tensor) else -1)
            if entry is None:
                self.leaves.append(leaf)
            else:
                self.leaves.append(Saved(entry, leaf))
                self.input_entries.append(entry)
        self.input_storages = {id(e.storage_ref()) for e in self.input_entries}
        self.outputs: list[Entry] = []
        self.live_outputs = 0
        self.packs = 0  # packs seen while the region was open, the recompute's index
        self.cpu_rng = torch.get_rng_state()
        self.cuda_rng = torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None
        self.autocast = autocast_state(self.device.type)
        self.grad_enabled = torch.is_grad_enabled()
        self.seconds = 0.0

    def add_output(self, entry: Entry, pack_index: int) -> None:
        entry.region = self
        entry.pack_index = pack_index
        self.outputs.append(entry)
        self.live_outputs += 1

    def output_released(self) -> None:
        self.live_outputs -= 1
        if self.live_outputs == 0 and self.step.region is not self:  # not while it runs
            self.release()

    def release(self) -> None:
        """Drops the inputs (their entries may go) once no output can be asked for again."""
        self.leaves = None
        self.outputs = []

    def recompute(self, wanted: Entry, everything: bool) -> float:
        """Reruns the module and restores `wanted` (discarded), or every discarded output
        with `everything` (checkpointing, in an observed step); returns the seconds spent.

        Under a plan only the tensor asked for comes back: libmemento's plan counts each
        discarded output back at its own next use (and charges the region's cost for each),
        so restoring the region's other discarded outputs early would take memory the plan
        does not expect."""
        if self.leaves is None:
            raise UnsupportedError(f"memento.torch: region {self.name} was released")
        start = time.perf_counter()
        step = self.step
        leaves = []
        for leaf, grad, version in zip(self.leaves, self.requires_grad, self.versions):
            if isinstance(leaf, Saved):
                step.materialize(leaf.entry)
                leaf.entry.check_version(leaf.version, f"rerunning region {self.name} needs it")
                leaf = leaf.view().detach().requires_grad_(grad)
            elif isinstance(leaf, torch.Tensor):
                _check_leaf_version(leaf, version, self.name)
            leaves.append(leaf)
        args, kwargs = tree_unflatten(leaves, self.spec)
        collected: list[torch.Tensor] = []

        def collect(t: torch.Tensor) -> None:
            # Detached: a saved output holding its own grad_fn would be a reference cycle
            # that keeps the rerun's whole graph alive. The rerun is never backpropagated.
            collected.append(t.detach())

        devices = [self.device] if self.device.type == "cuda" else []
        enabled, dtype = self.autocast
        with step.runtime.recomputing(), torch.random.fork_rng(devices=devices):
            torch.set_rng_state(self.cpu_rng)
            if self.cuda_rng is not None:
                torch.cuda.set_rng_state(self.cuda_rng, self.device)
            with torch.autocast(self.device.type, dtype=dtype, enabled=enabled), \
                    torch.set_grad_enabled(self.grad_enabled), \
                    torch.autograd.graph.saved_tensors_hooks(collect, _never_unpacked):  # fmt: skip
                self.module(*args, **kwargs)
        for entry in self.outputs if everything else [wanted]:
            if entry.state != DISCARDED:
                continue
            if entry.pack_index >= len(collected):
                raise UnsupportedError(
                    f"memento.torch: rerunning region {self.name} saved {len(collected)} tensors, "
                    f"the first run saved at least {entry.pack_index + 1}: its forward must save "
                    "the same tensors each time (no data-dependent control flow)"
                )
            again = collected[entry.pack_index]
            if again.untyped_storage().nbytes() != entry.nbytes:
                raise UnsupportedError(
                    f"memento.torch: rerunning region {self.name} gave saved tensor "
                    f"{entry.pack_index} {again.untyped_storage().nbytes()} bytes, the first run "
                    f"{entry.nbytes} ({entry.name}): its forward must be deterministic in shape"
                )
            step.restored(entry, again)
        return time.perf_counter() - start
