"""Shared fixtures: a small transformer-like model with repeated blocks, dropout, views and
transposes among its saved tensors, and a reference training step without memento."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Callable

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the package, uninstalled

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

WIDTH, BATCH, SEQ = 64, 4, 64


class Block(nn.Module):
    def __init__(self, width: int, dropout: float) -> None:
        super().__init__()
        self.ln = nn.LayerNorm(width)
        self.proj = nn.Linear(width, width)
        self.fc1 = nn.Linear(width, 4 * width)
        self.fc2 = nn.Linear(4 * width, width)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.ln(x)
        scores = h @ h.transpose(-1, -2) / math.sqrt(h.shape[-1])  # a transpose is saved
        x = x + self.proj(torch.softmax(scores, -1) @ h)
        return x + self.drop(self.fc2(F.gelu(self.fc1(x))))


class Net(nn.Module):
    def __init__(self, layers: int = 4, width: int = WIDTH, dropout: float = 0.1) -> None:
        super().__init__()
        self.embed = nn.Linear(16, width)
        self.blocks = nn.ModuleList(Block(width, dropout) for _ in range(layers))
        self.head = nn.Linear(width, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.embed(x)
        for block in self.blocks:
            h = block(h)
        return self.head(h).square().mean()


def make_net(seed: int = 0, **kwargs: object) -> Net:
    torch.manual_seed(seed)
    return Net(**kwargs)  # type: ignore[arg-type]


def batch(step: int, seq: int = SEQ) -> torch.Tensor:
    g = torch.Generator().manual_seed(1000 + step)
    return torch.randn(BATCH, seq, 16, generator=g)


def train(net: Net, steps: int, wrap: Callable[[], object] | None = None, seq: int = SEQ) -> tuple[list[float], list[torch.Tensor]]:
    """Losses and final gradients of `steps` SGD steps; `wrap` gives a context per step."""
    torch.manual_seed(42)  # dropout's stream
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    losses = []
    for s in range(steps):
        opt.zero_grad()
        ctx = wrap() if wrap is not None else None
        if ctx is not None:
            with ctx:  # type: ignore[attr-defined]
                loss = net(batch(s, seq))
                loss.backward()
        else:
            loss = net(batch(s, seq))
            loss.backward()
        losses.append(loss.item())
        grads = [p.grad.clone() for p in net.parameters()]
        opt.step()
    return losses, grads


@pytest.fixture
def reference() -> tuple[list[float], list[torch.Tensor]]:
    return train(make_net(), 4)
