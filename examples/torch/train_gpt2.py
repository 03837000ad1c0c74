"""Trains the plain-PyTorch GPT-2 of gpt2.py under a memento budget.

    MEMENTO_BUDGET=64MiB python examples/torch/train_gpt2.py --preset tiny --steps 10
    python examples/torch/train_gpt2.py --preset 124m --batch 8 --seq 1024 --budget 8GiB

The one line memento adds to a training script is the Runtime(...).attach(model) below."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gpt2  # noqa: E402

import memento.torch  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="tiny", choices=sorted(gpt2.PRESETS))
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--budget", default=None, help="bytes, e.g. 8GiB (default: MEMENTO_BUDGET)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--bf16", action="store_true", help="bf16 autocast")
    args = ap.parse_args()

    model, inputs = gpt2.make(args.preset, args.batch, args.seq, args.device)
    rt = memento.torch.Runtime(budget=args.budget, device=args.device).attach(model)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4)
    print(f"memento: budget {memento.format_bytes(rt.budget)}, regions {len(rt.regions)}, "
          f"link {rt.link[0] / 1e9:.1f}/{rt.link[1] / 1e9:.1f} GB/s (measured)")  # fmt: skip
    for step in range(args.steps):
        start = time.perf_counter()
        with rt.step(), torch.autocast(torch.device(args.device).type, torch.bfloat16, enabled=args.bf16):
            loss = model(*inputs(step))
            loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        print(f"step {step + 1:3d} loss {loss.item():.4f} {1e3 * (time.perf_counter() - start):8.1f} ms | {rt.last}")


if __name__ == "__main__":
    main()
