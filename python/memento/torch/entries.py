"""Saved activations as memento sees them: one Entry per storage (views share it), one Saved
per pack (what autograd holds), restored as the same view of the storage they were packed as.

An Entry holds its storage while it is on the device. Evicted, it holds nothing: the memory
comes back as soon as the program drops its own references, since memento then holds the
last one. States: resident, offloaded (bytes in memento's pinned host pool), prefetching (a
copy back in flight), discarded (to be recomputed by its region)."""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any, Optional

import torch

if TYPE_CHECKING:
    from memento.torch.regions import Region
    from memento.torch.step import Step

RESIDENT, OFFLOADED, PREFETCHING, DISCARDED, RELEASED = range(5)
STATE_NAMES = ("resident", "offloaded", "prefetching", "discarded", "released")


class Entry:
    """One storage registered with memento in a step."""

    __slots__ = (
        "step", "id", "nbytes", "device", "storage", "storage_ref", "alias", "version",
        "state", "region", "pack_index", "uses", "action", "after_use", "refs", "name", "watched",
        "pending",
    )  # fmt: skip

    def __init__(self, step: Step, tensor: torch.Tensor, region: Optional[Region]) -> None:
        self.step = step
        self.storage: Optional[Any] = tensor.untyped_storage()
        self.nbytes: int = self.storage.nbytes()
        self.device = tensor.device
        self.storage_ref = weakref.ref(self.storage)
        self.watched: list[weakref.ref[Any]] = []  # the alive-bytes callbacks (Step.watch)
        self.pending: Optional[Any] = None  # the storage an async copy out still reads
        # A detached alias shares the tensor's version counter (in-place changes) while the
        # entry is resident; `version` is the highest version any pack saw.
        self.alias: Optional[torch.Tensor] = tensor.detach()
        self.version: int = tensor._version
        self.state = RESIDENT
        self.region = region
        self.pack_index = -1  # the region's pack that first saved it
        self.uses = 0
        self.action = 0
        self.after_use = 0
        self.refs = 0  # live Saved handles and regions that hold it as an input
        self.name = f"{tuple(tensor.shape)} {str(tensor.dtype).replace('torch.', '')}"
        self.id: Optional[int] = None  # set by the step once registered

    def same_storage(self, tensor: torch.Tensor) -> bool:
        return self.storage_ref() is tensor.untyped_storage()

    def check_version(self, saved_at: int, what: str) -> None:
        """Raises when the tensor was modified in place since a pack saved it at version
        `saved_at` (as autograd does); only while the original is resident."""
        from memento.torch.errors import UnsupportedError

        if self.alias is not None and self.alias._version != saved_at:
            raise UnsupportedError(
                f"memento.torch: a saved tensor {self.name} was modified by an in-place "
                f"operation after autograd saved it (version {self.alias._version}, saved at "
                f"{saved_at}); {what}. Autograd needs its saved value: make the in-place "
                "operation out of place."
            )

    def unref(self) -> None:
        self.refs -= 1
        if self.refs == 0:
            self.step.release(self)


class Saved:
    """What autograd holds for one saved tensor: its entry and how to view the storage."""

    __slots__ = ("entry", "dtype", "size", "stride", "offset", "version", "__weakref__")

    def __init__(self, entry: Entry, tensor: torch.Tensor) -> None:
        self.entry = entry
        self.dtype = tensor.dtype
        self.size = tuple(tensor.size())
        self.stride = tuple(tensor.stride())
        self.offset = tensor.storage_offset()
        self.version = tensor._version
        entry.version = max(entry.version, self.version)
        entry.refs += 1

    def view(self) -> torch.Tensor:
        """The saved tensor, as a view of its entry's (resident) storage."""
        storage = self.entry.storage
        assert storage is not None, "memento.torch: a saved tensor's storage is not resident"
        out = torch.empty((0,), dtype=self.dtype, device=self.entry.device)
        return out.set_(storage, self.offset, self.size, self.stride)

    def __del__(self) -> None:
        try:
            self.entry.unref()
        except Exception as error:  # a destructor cannot raise: the step reports it
            self.entry.step.defer_error(error)
