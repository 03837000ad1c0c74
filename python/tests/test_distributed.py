"""memento under torch.distributed: DDP, and FSDP2's fully_shard where the installed PyTorch
has it, with 2 ranks on gloo (CPU), each rank its own process, libmemento and budget.
Gradients equal the same run without memento, bit for bit, and each rank stays within its
budget."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

WORLD = 2
STEPS = 3


def _full(grad: torch.Tensor) -> torch.Tensor:
    return grad.full_tensor() if hasattr(grad, "full_tensor") else grad  # FSDP2: a DTensor


def _worker(rank: int, out_dir: str, use_memento: bool, budget: int, wrap: str) -> None:
    os.environ.pop("MEMENTO_DEVICE", None)
    dist.init_process_group("gloo", init_method=f"file://{out_dir}/rendezvous-{use_memento}",
                            rank=rank, world_size=WORLD)  # fmt: skip
    from conftest import batch, make_net

    import memento.torch as mt

    if wrap == "ddp":
        from torch.nn.parallel import DistributedDataParallel as DDP

        net = DDP(make_net())
    else:
        from torch.distributed.fsdp import fully_shard

        net = make_net()
        for block in net.blocks:
            fully_shard(block)
        fully_shard(net)
    rt = mt.Runtime(budget=budget, min_bytes=0, link_bandwidth=1e12).attach(net) if use_memento else None
    torch.manual_seed(42 + rank)
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    peaks = []
    for s in range(STEPS):
        opt.zero_grad()
        if rt is not None:
            with rt.step():
                net(batch(s * WORLD + rank)).backward()
            peaks.append((rt.last.phase, rt.last.peak_bytes, rt.last.offloaded + rt.last.recomputes))
        else:
            net(batch(s * WORLD + rank)).backward()
        grads = [_full(p.grad).clone() for p in net.parameters()]
        opt.step()
    torch.save({"grads": grads, "peaks": peaks}, f"{out_dir}/rank{rank}-{use_memento}.pt")
    dist.destroy_process_group()


def _has_fully_shard() -> bool:
    try:
        from torch.distributed.fsdp import fully_shard  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.parametrize("wrap", ["ddp", "fsdp2"])
def test_two_ranks(tmp_path: Path, wrap: str) -> None:
    if wrap == "fsdp2" and not _has_fully_shard():
        pytest.skip(f"torch {torch.__version__} has no torch.distributed.fsdp.fully_shard")
    budget = 3 << 19  # 1.5 MiB: below the 3.6 MiB one rank saves unlimited, above a block's
    for use_memento in (False, True):
        mp.spawn(_worker, args=(str(tmp_path), use_memento, budget, wrap), nprocs=WORLD, join=True)
    for rank in range(WORLD):
        plain = torch.load(tmp_path / f"rank{rank}-False.pt")
        with_memento = torch.load(tmp_path / f"rank{rank}-True.pt")
        for a, b in zip(plain["grads"], with_memento["grads"]):
            assert torch.equal(a, b)
        phases = [p[0] for p in with_memento["peaks"]]
        assert phases == ["observed", "planned", "planned"]
        for phase, peak, evictions in with_memento["peaks"]:
            assert peak <= budget, f"rank {rank}: {phase} step peaked at {peak} > {budget}"
            assert evictions > 0
