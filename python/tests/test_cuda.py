"""On a GPU only (skipped elsewhere): offloads and copies back are stream-ordered. The compute
stream is delayed with torch.cuda._sleep so that a copy that does not wait for its producer,
or a use that does not wait for its copy back, reads the wrong bytes."""

from __future__ import annotations

import pytest
import torch
from conftest import batch, make_net

import memento.torch as mt

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _delayed(net: torch.nn.Module, steps: int, wrap=None):  # type: ignore[no-untyped-def]
    torch.manual_seed(42)
    grads = []
    for s in range(steps):
        for p in net.parameters():
            p.grad = None
        ctx = wrap() if wrap else None
        x = batch(s).cuda()
        if ctx is not None:
            ctx.__enter__()
        torch.cuda._sleep(50_000_000)  # the forward's kernels queue behind ~tens of ms
        loss = net(x)
        torch.cuda._sleep(50_000_000)  # and so does the backward
        loss.backward()
        if ctx is not None:
            ctx.__exit__(None, None, None)
        grads.append([p.grad.clone() for p in net.parameters()])
    torch.cuda.synchronize()
    return grads


def test_offload_and_copy_back_are_stream_ordered() -> None:
    plain_net = make_net().cuda()
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    plain = _delayed(plain_net, 3)
    peak = torch.cuda.max_memory_allocated()
    del plain_net
    net = make_net().cuda()
    # what the model holds, plus 60% of what the plain step added on top
    budget = base + int(0.6 * (peak - base))
    rt = mt.Runtime(budget=budget, min_bytes=0, link_bandwidth=1e12).attach(net)  # offload
    ours = _delayed(net, 3, rt.step)
    for a, b in zip(plain, ours):
        for x, y in zip(a, b):
            assert torch.equal(x, y)
    assert rt.last is not None and rt.last.phase == "planned"
    assert rt.last.offloaded > 0, str(rt.last)
    rt.detach()
