"""GPT-2 in plain PyTorch (no transformers dependency), for memento's examples and benchmarks.

Presets from a tiny one that trains in seconds on a CPU to GPT-2 124M. `make(preset, batch,
seq)` is the factory `python -m memento.torch.compare` takes: it returns the model and a
function that gives each step's inputs; the model returns the loss."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class Config:
    layers: int
    heads: int
    width: int
    vocab: int = 50257
    context: int = 1024
    dropout: float = 0.0


PRESETS = {
    "tiny": Config(layers=4, heads=4, width=128, vocab=512, context=256, dropout=0.1),
    "small": Config(layers=6, heads=8, width=256, vocab=4096, context=512, dropout=0.1),
    "124m": Config(layers=12, heads=12, width=768),
}


class Attention(nn.Module):
    def __init__(self, c: Config) -> None:
        super().__init__()
        self.heads = c.heads
        self.qkv = nn.Linear(c.width, 3 * c.width)
        self.proj = nn.Linear(c.width, c.width)
        self.dropout = c.dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, w = x.shape
        q, k, v = self.qkv(x).split(w, dim=2)
        q, k, v = (z.view(b, t, self.heads, w // self.heads).transpose(1, 2) for z in (q, k, v))
        p = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=p)
        return self.proj(y.transpose(1, 2).contiguous().view(b, t, w))


class Block(nn.Module):
    def __init__(self, c: Config) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(c.width)
        self.attn = Attention(c)
        self.ln2 = nn.LayerNorm(c.width)
        self.fc = nn.Linear(c.width, 4 * c.width)
        self.out = nn.Linear(4 * c.width, c.width)
        self.drop = nn.Dropout(c.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.drop(self.out(F.gelu(self.fc(self.ln2(x)), approximate="tanh")))


class GPT2(nn.Module):
    def __init__(self, c: Config) -> None:
        super().__init__()
        self.config = c
        self.wte = nn.Embedding(c.vocab, c.width)
        self.wpe = nn.Embedding(c.context, c.width)
        self.drop = nn.Dropout(c.dropout)
        self.blocks = nn.ModuleList(Block(c) for _ in range(c.layers))
        self.ln_f = nn.LayerNorm(c.width)
        self.bf16 = False  # bf16 autocast around the forward
        self.apply(self._init)

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)

    def forward(self, tokens: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        with torch.autocast(tokens.device.type, torch.bfloat16, enabled=self.bf16):
            return self._loss(tokens, targets)

    def _loss(self, tokens: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        t = tokens.shape[1]
        pos = torch.arange(t, device=tokens.device)
        x = self.drop(self.wte(tokens) + self.wpe(pos))
        for block in self.blocks:
            x = block(x)
        logits = self.ln_f(x) @ self.wte.weight.t()  # tied embedding
        return F.cross_entropy(logits.float().view(-1, logits.shape[-1]), targets.reshape(-1))


def make(preset: str = "tiny", batch: int = 4, seq: int = 128, device: str = "cpu",
         seed: int = 0, bf16: int = 0) -> tuple[nn.Module, Callable[[int], tuple[torch.Tensor, torch.Tensor]]]:  # fmt: skip
    """The model and `inputs(step)`: random token batches (the same for the same step)."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; accepted: {', '.join(PRESETS)}")
    c = PRESETS[preset]
    if seq > c.context:
        raise ValueError(f"seq {seq} is longer than preset {preset}'s context of {c.context}")
    torch.manual_seed(seed)
    model = GPT2(c).to(device)
    model.bf16 = bool(bf16)

    def inputs(step: int) -> tuple[torch.Tensor, torch.Tensor]:
        g = torch.Generator().manual_seed(seed * 7919 + step)
        data = torch.randint(0, c.vocab, (batch, seq + 1), generator=g).to(device)
        return data[:, :-1], data[:, 1:]

    return model, inputs


__all__ = ["Config", "GPT2", "PRESETS", "make"]
