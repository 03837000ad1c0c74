"""libmemento as PyTorch's CUDA allocator (torch.cuda.memory.CUDAPluggableAllocator), and
memento's out-of-memory raised as an error PyTorch users recognise.

Under a pluggable allocator PyTorch loses its own statistics: torch.cuda.memory_allocated,
max_memory_allocated, memory_stats and memory_summary raise or report nothing. memento's
are in memento.torch.allocator_stats() (the memento_stats of memento.h)."""

from __future__ import annotations

import ctypes
from typing import Optional

import torch

from memento._lib import MementoError, Stats, lib, library_path
from memento.torch.errors import OutOfMemoryError

_installed = False


def use_allocator() -> None:
    """Installs libmemento as PyTorch's CUDA allocator. Call it before any CUDA allocation."""
    global _installed
    if _installed:
        return
    if not torch.cuda.is_available():
        raise MementoError(
            "memento.torch.use_allocator: PyTorch sees no CUDA device (torch "
            f"{torch.__version__}, CUDA {torch.version.cuda}); memento's allocator serves CUDA "
            "memory only"
        )
    allocator = torch.cuda.memory.CUDAPluggableAllocator(
        str(library_path()), "memento_malloc", "memento_free"
    )
    try:
        torch.cuda.memory.change_current_allocator(allocator)
    except RuntimeError as error:
        raise MementoError(
            "memento.torch.use_allocator was called too late: PyTorch's CUDA allocator already "
            "served an allocation in this process. Call it first, before any tensor or model is "
            f"moved to the GPU ({error})"
        ) from error
    _installed = True


def installed() -> bool:
    """Whether use_allocator() installed memento as PyTorch's allocator."""
    return _installed


def allocator_stats() -> Stats:
    """memento's allocator statistics (memento_stats)."""
    stats = Stats()
    lib().call("memento_get_stats", ctypes.byref(stats))
    return stats


def out_of_memory_count() -> int:
    return int(allocator_stats().out_of_memory) if _installed else 0


def translate_oom(before: int, error: BaseException) -> Optional[OutOfMemoryError]:
    """An OutOfMemoryError carrying memento's message when memento's allocator ran out of
    memory since `before` (its out_of_memory counter), else None."""
    if not _installed or out_of_memory_count() <= before:
        return None
    stats = allocator_stats()
    return OutOfMemoryError(
        f"memento: out of memory under a budget of {stats.budget} bytes ({stats.allocated} "
        f"allocated, {stats.reserved} reserved): {lib().last_error() or error}"
    )
