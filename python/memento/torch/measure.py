"""Peak memory of a step, the same way for every strategy: on cuda PyTorch's allocator
statistics; on the CPU (whose allocator keeps none) the bytes of live tensor storages made
during the step, followed through a dispatch mode."""

from __future__ import annotations

import weakref
from typing import Any, Optional

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten


class LiveBytes(TorchDispatchMode):
    """Counts the storages the ops inside it make, until each dies; `peak` is the highest."""

    def __init__(self) -> None:
        super().__init__()
        self.live = 0
        self.peak = 0
        self._seen: dict[int, weakref.ref[Any]] = {}

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor) and t.device.type == "cpu":
                self._track(t.untyped_storage())
        return out

    def _track(self, storage: Any) -> None:
        key = id(storage)
        if key in self._seen and self._seen[key]() is storage:
            return
        nbytes = storage.nbytes()

        def died(_: Any, mode: LiveBytes = self, key: int = key, nbytes: int = nbytes) -> None:
            mode.live -= nbytes
            mode._seen.pop(key, None)

        self._seen[key] = weakref.ref(storage, died)
        self.live += nbytes
        self.peak = max(self.peak, self.live)


class PeakMeter:
    """with PeakMeter(device) as m: ... ; m.peak is the step's peak bytes: on cuda of all
    allocated memory (what a budget there covers), on the CPU of the storages the step made."""

    def __init__(self, device: torch.device, cpu_tracking: bool = True) -> None:
        self.device = device
        self.peak = 0
        self._mode: Optional[LiveBytes] = LiveBytes() if device.type == "cpu" and cpu_tracking else None

    def __enter__(self) -> "PeakMeter":
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        elif self._mode is not None:
            self._mode.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            # Absolute, as memento's budget is: the parameters and gradients included.
            self.peak = torch.cuda.max_memory_allocated(self.device)
        elif self._mode is not None:
            self._mode.__exit__(*exc)
            self.peak = self._mode.peak
