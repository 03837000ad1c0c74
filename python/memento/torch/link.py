"""The host link's bandwidth each way, measured: what memento's planner needs to weigh an
offload against a recompute (the backends report none: 0 means unknown)."""

from __future__ import annotations

import time

import torch

_PROBE_BYTES = 64 << 20


def measure_link(device: torch.device, nbytes: int = _PROBE_BYTES, repeats: int = 3) -> tuple[float, float]:
    """(device-to-host, host-to-device) bytes/s: the best of `repeats` copies of `nbytes`
    between the device and pinned host memory (on the CPU: between two host buffers, what
    memento's host backend does)."""
    if device.type == "cuda":
        with torch.cuda.device(device):  # the events time the device's own stream
            return _measure_cuda(device, nbytes, repeats)
    a = torch.empty(nbytes, dtype=torch.uint8)
    b = torch.empty(nbytes, dtype=torch.uint8)
    a.fill_(1)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        b.copy_(a)
        best = min(best, time.perf_counter() - start)
    return nbytes / best, nbytes / best


def _measure_cuda(device: torch.device, nbytes: int, repeats: int) -> tuple[float, float]:
    src = torch.empty(nbytes, dtype=torch.uint8, device=device)
    host = torch.empty(nbytes, dtype=torch.uint8, pin_memory=True)
    stream = torch.cuda.current_stream(device)
    best_out = best_back = float("inf")
    for _ in range(repeats):
        begin, mid, end = (torch.cuda.Event(enable_timing=True) for _ in range(3))
        begin.record(stream)
        host.copy_(src, non_blocking=True)
        mid.record(stream)
        src.copy_(host, non_blocking=True)
        end.record(stream)
        end.synchronize()
        best_out = min(best_out, begin.elapsed_time(mid) / 1e3)
        best_back = min(best_back, mid.elapsed_time(end) / 1e3)
    return nbytes / best_out, nbytes / best_back
