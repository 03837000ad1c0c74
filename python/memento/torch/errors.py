"""The errors memento.torch raises."""

from __future__ import annotations

import torch

from memento._lib import MementoError


class BudgetError(MementoError):
    """The budget cannot be met: the message names the smallest budget observed to fit."""

    def __init__(self, message: str, smallest_budget: int) -> None:
        super().__init__(message)
        self.smallest_budget = smallest_budget


class UnsupportedError(MementoError):
    """A program memento.torch refuses rather than handle wrongly (torch.compile, CUDA graphs,
    a saved tensor modified in place, a region whose recompute saves other tensors)."""


_Oom = getattr(torch.cuda, "OutOfMemoryError", RuntimeError)


class OutOfMemoryError(_Oom):  # type: ignore[misc, valid-type]
    """memento's allocator could not satisfy an allocation (a torch.cuda.OutOfMemoryError
    carrying memento's message: the request, the budget and what eviction freed)."""
