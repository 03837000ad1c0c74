"""libmemento loaded with ctypes: the C API of include/memento/memento.h, typed.

The library is found at ``MEMENTO_LIBRARY`` (a path to libmemento.so), else beside this
package (an installed copy), else in the source tree's ``build/`` (the README's build).
Every call that returns -1 (or NULL) raises MementoError with memento_last_error()."""

from __future__ import annotations

import ctypes
import os
from pathlib import Path
from typing import Any, Callable

c_stream = ctypes.c_void_p  # memento_stream_t: cudaStream_t, NULL for the default stream


class MementoError(RuntimeError):
    """An error reported by libmemento (its message names what was wrong)."""


class Stats(ctypes.Structure):
    """memento_stats: the process-wide allocator's statistics."""

    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "budget", "allocated", "peak_allocated", "requested", "peak_requested",
            "reserved", "peak_reserved", "active", "peak_active", "segments", "live_blocks",
            "allocations", "frees", "cache_hits", "segment_allocs", "segment_frees",
            "pressure_calls", "pressure_freed", "out_of_memory",
        )
    ] + [("fragmentation", ctypes.c_double)]  # fmt: skip


class StepStatsC(ctypes.Structure):
    """memento_step_stats: how a step ran and the plan in force for the next."""

    _fields_ = [
        ("phase", ctypes.c_int),
        ("new_plan", ctypes.c_int),
        ("fits", ctypes.c_int),
        ("tensors", ctypes.c_size_t),
        ("tensor_bytes", ctypes.c_size_t),
        ("kept", ctypes.c_size_t),
        ("offloaded", ctypes.c_size_t),
        ("recomputed", ctypes.c_size_t),
        ("kept_bytes", ctypes.c_size_t),
        ("offloaded_bytes", ctypes.c_size_t),
        ("recomputed_bytes", ctypes.c_size_t),
        ("budget", ctypes.c_size_t),
        ("predicted_peak", ctypes.c_size_t),
        ("observed_seconds", ctypes.c_double),
        ("predicted_extra_seconds", ctypes.c_double),
        ("plan_cpu_seconds", ctypes.c_double),
        ("margin", ctypes.c_double),
    ]


KEEP, OFFLOAD, RECOMPUTE = 0, 1, 2  # memento_action
OBSERVED, PLANNED = 0, 1  # memento_step_phase

_i64 = ctypes.c_int64
_int = ctypes.c_int
_size = ctypes.c_size_t
_dbl = ctypes.c_double
_ptr = ctypes.c_void_p

# name: (restype, argtypes, what a failure returns)
_SIGNATURES: dict[str, tuple[Any, list[Any], Any]] = {
    "memento_set_budget": (_int, [_size], -1),
    "memento_get_budget": (_size, [], 0),
    "memento_get_stats": (_int, [ctypes.POINTER(Stats)], -1),
    "memento_empty_cache": (_int, [], -1),
    "memento_shutdown": (None, [], None),
    "memento_last_error": (ctypes.c_char_p, [], None),
    "memento_step_begin": (_int, [], -1),
    "memento_step_end": (_int, [ctypes.POINTER(StepStatsC)], -1),
    "memento_step_following": (_int, [], -1),
    "memento_tensor_register": (_i64, [_ptr, _size, c_stream], -1),
    "memento_region_register": (
        _int, [ctypes.POINTER(_i64), _size, ctypes.POINTER(_i64), _size, _dbl], -1),
    "memento_tensor_use": (_int, [_i64], -1),
    "memento_tensor_free": (_int, [_i64], -1),
    "memento_plan_action": (
        _int, [_i64, ctypes.POINTER(_int), ctypes.POINTER(ctypes.c_uint32)], -1),
    "memento_offload": (_int, [_i64, c_stream], -1),
    "memento_offload_async": (_int, [_i64, c_stream], -1),
    "memento_offload_done": (_int, [_i64, _int], -1),
    "memento_copy_back": (_int, [_i64, _ptr, c_stream], -1),
    "memento_prefetch": (_int, [_i64, _ptr, c_stream], -1),
    "memento_prefetch_due": (_int, [ctypes.POINTER(_i64), _size], -1),
    "memento_wait_ready": (_int, [_i64, c_stream], -1),
    "memento_synchronize": (_int, [c_stream], -1),
    "memento_note_seconds": (_int, [_dbl], -1),
    "memento_note_other_bytes": (_int, [_size], -1),
    "memento_note_peak": (_int, [_size], -1),
    "memento_set_link_bandwidth": (_int, [_dbl, _dbl], -1),
}  # fmt: skip


def library_path() -> Path:
    """Where libmemento is loaded from (see the module's docstring)."""
    explicit = os.environ.get("MEMENTO_LIBRARY")
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise MementoError(f"MEMENTO_LIBRARY={explicit!r} is not a file; set it to libmemento.so")
        return path
    here = Path(__file__).resolve().parent
    candidates = [here / "libmemento.so", here.parent.parent / "build" / "libmemento.so"]
    for path in candidates:
        if path.is_file():
            return path
    raise MementoError(
        "libmemento.so not found: looked at "
        + ", ".join(str(p) for p in candidates)
        + "; build it (scripts/test.sh or cmake --build --preset default) or set MEMENTO_LIBRARY"
    )


class Library:
    """The loaded library: each C function as a method that raises MementoError on failure."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._dll = ctypes.CDLL(str(path))
        missing = [name for name in _SIGNATURES if not hasattr(self._dll, name)]
        if missing:
            raise MementoError(f"{path} lacks {', '.join(missing)}: it is older than this package")
        for name, (restype, argtypes, _) in _SIGNATURES.items():
            fn = getattr(self._dll, name)
            fn.restype = restype
            fn.argtypes = argtypes

    def last_error(self) -> str:
        raw = self._dll.memento_last_error()
        return raw.decode() if raw else ""

    def call(self, name: str, *args: Any) -> Any:
        fn: Callable[..., Any] = getattr(self._dll, name)
        result = fn(*args)
        failure = _SIGNATURES[name][2]
        if failure is not None and result == failure:
            message = self.last_error()
            if failure == 0 and not message:
                return result  # memento_get_budget: 0 without an error is a value
            raise MementoError(message or f"{name} failed")
        return result


_library: Library | None = None


def lib() -> Library:
    """The process's libmemento, loaded on first use."""
    global _library
    if _library is None:
        _library = Library(library_path())
    return _library
