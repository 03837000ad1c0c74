"""memento for PyTorch: a byte budget for any nn.Module, with per-tensor recompute or offload.

    import memento.torch
    rt = memento.torch.Runtime(budget="8GiB").attach(model)   # or MEMENTO_BUDGET=8GiB

The decisions (what to keep, offload or recompute, and when to copy back) are libmemento's,
through its C API; this package carries them out with PyTorch's saved-tensor hooks."""

from memento.torch.allocator import allocator_stats, use_allocator
from memento.torch.errors import BudgetError, OutOfMemoryError, UnsupportedError
from memento.torch.link import measure_link
from memento.torch.runtime import Runtime, find_regions
from memento.torch.stats import StepStats

__all__ = [
    "BudgetError", "OutOfMemoryError", "Runtime", "StepStats", "UnsupportedError",
    "allocator_stats", "find_regions", "measure_link", "use_allocator",
]  # fmt: skip
