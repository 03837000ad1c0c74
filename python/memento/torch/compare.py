"""python -m memento.torch.compare: a PyTorch model under none, memento attached without a
budget (what its hooks cost), PyTorch's checkpoint-every-block, save_on_cpu, and memento at
given budgets (and at the peak checkpointing reaches). Prints the table `memento compare`
prints and writes the same results.json fields.

    python -m memento.torch.compare --model examples/torch/gpt2.py:make --arg preset=tiny \\
        --budget 70%,50% --steps 4 --out results

The factory (`module:function` or `path/to/file.py:function`, called with the --arg values)
returns (model, inputs): inputs(step) gives the step's positional arguments, and the model
returns the loss. Step times are medians of the steps after the first; the peak comes from a
further step (cuda: PyTorch's allocator statistics; CPU: the storages made during the step)."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import statistics
import sys
import time
from contextlib import ExitStack, contextmanager, nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import torch
from torch import nn

from memento.bytes import format_bytes, parse_bytes
from memento.torch.errors import BudgetError
from memento.torch.measure import PeakMeter
from memento.torch.runtime import Runtime, find_regions

Factory = Callable[..., tuple[nn.Module, Callable[[int], tuple[Any, ...]]]]


@dataclass
class Row:
    strategy: str
    budget_bytes: Optional[int]
    peak_bytes: int
    fits: bool
    step_time_s: float
    slowdown: float = 1.0
    overhead: float = 0.0
    loss: float = 0.0
    offloaded_bytes: int = 0
    recompute_s: float = 0.0
    note: str = ""


def load_factory(spec: str) -> Factory:
    module_name, sep, function = spec.rpartition(":")
    if not sep or not module_name or not function:
        raise SystemExit(f"--model {spec!r}: expected MODULE:FUNCTION or FILE.py:FUNCTION")
    if module_name.endswith(".py"):
        path = Path(module_name)
        if not path.is_file():
            raise SystemExit(f"--model {spec!r}: no file {path}")
        sys.path.insert(0, str(path.resolve().parent))
        loaded = importlib.util.spec_from_file_location(path.stem, path)
        assert loaded is not None and loaded.loader is not None
        module = importlib.util.module_from_spec(loaded)
        sys.modules[path.stem] = module  # dataclasses look their module up
        loaded.loader.exec_module(module)
    else:
        module = importlib.import_module(module_name)
    if not hasattr(module, function):
        raise SystemExit(f"--model {spec!r}: {module_name} has no {function}")
    return getattr(module, function)  # type: ignore[no-any-return]


def parse_args_kv(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--arg {item!r}: expected KEY=VALUE")
        for cast in (int, float):
            try:
                out[key] = cast(value)
                break
            except ValueError:
                continue
        else:
            out[key] = value
    return out


@contextmanager
def checkpointed(model: nn.Module) -> Iterator[None]:
    """Every region of the model as torch.utils.checkpoint(use_reentrant=False)."""
    from torch.utils.checkpoint import checkpoint

    originals = []
    for _, block in find_regions(model):
        forward = block.forward
        originals.append((block, forward))
        block.forward = lambda *a, f=forward, **k: checkpoint(f, *a, use_reentrant=False, **k)  # type: ignore[method-assign]
    try:
        yield
    finally:
        for block, forward in originals:
            block.forward = forward  # type: ignore[method-assign]


def run(factory: Factory, kwargs: dict[str, Any], strategy: str, steps: int, device: torch.device,
        budget: Optional[int]) -> Row:  # fmt: skip
    model, inputs = factory(**kwargs)
    rt: Optional[Runtime] = None
    with ExitStack() as stack:
        if strategy == "checkpoint":
            stack.enter_context(checkpointed(model))
        if strategy.startswith("memento"):
            # Without a budget the row measures the hooks alone: no dispatch mode on the CPU.
            cpu_memory = "all" if budget is not None else "saved"
            rt = Runtime(budget=budget, device=device, cpu_memory=cpu_memory).attach(model)
            stack.callback(rt.detach)

        def one_step(s: int) -> float:
            if strategy == "save_on_cpu":
                ctx: Any = torch.autograd.graph.save_on_cpu(pin_memory=device.type == "cuda")
            else:
                ctx = rt.step() if rt is not None else nullcontext()
            with ctx:
                loss = model(*inputs(s))
                loss.backward()
            for p in model.parameters():
                p.grad = None
            return float(loss.item())

        times, loss = [], 0.0
        for s in range(steps):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            loss = one_step(s)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            times.append(time.perf_counter() - start)
        with PeakMeter(device) as meter:
            one_step(steps)
        row = Row(strategy, budget, meter.peak, True, statistics.median(times[1:] or times), loss=loss)
        if rt is not None and rt.last is not None:
            row.offloaded_bytes = rt.last.offloaded_bytes
            row.recompute_s = rt.last.recompute_seconds
        if budget is not None:
            row.fits = meter.peak <= budget
    return row


def resolve_budget(text: str, unlimited: int) -> int:
    text = text.strip()
    if text.endswith("%"):
        share = float(text[:-1])
        if not 0 < share <= 100:
            raise SystemExit(f"--budget {text!r}: a share must be in (0, 100]%")
        return int(unlimited * share / 100)
    return parse_bytes(text, "--budget")


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m memento.torch.compare", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    ap.add_argument("--model", required=True, help="MODULE:FUNCTION or FILE.py:FUNCTION")
    ap.add_argument("--arg", action="append", default=[], help="KEY=VALUE for the factory")
    ap.add_argument("--budget", default="70%,50%", help="shares of the unlimited peak or bytes")
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--out", default=None, help="a directory for results.json")
    args = ap.parse_args(argv)
    if args.steps < 2:
        ap.error("--steps must be at least 2 (the first is the observed one)")
    device = torch.device(args.device)
    factory = load_factory(args.model)
    kwargs = parse_args_kv(args.arg)
    kwargs.setdefault("device", args.device)

    plan: list[tuple[str, Optional[str]]] = [("none", None), ("memento", None), ("checkpoint", None), ("save_on_cpu", None)]
    rows: list[Row] = []
    budgets = [b for b in args.budget.split(",") if b.strip()]
    total = len(plan) + len(budgets) + 1
    done = 0

    def progress(label: str) -> None:
        width = 24
        filled = width * done // total
        print(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} {label:<40}", end="", file=sys.stderr, flush=True)

    def attempt(strategy: str, budget: Optional[int]) -> None:
        nonlocal done
        progress(f"{strategy} {format_bytes(budget) if budget else ''}")
        try:
            rows.append(run(factory, kwargs, strategy, args.steps, device, budget))
        except (BudgetError, torch.cuda.OutOfMemoryError) as error:
            rows.append(Row(strategy, budget, 0, False, float("nan"), note=str(error).splitlines()[0]))
        done += 1

    progress("warm-up")
    run(factory, kwargs, "none", 2, device, None)  # thread pools, kernels' first calls
    for strategy, _ in plan:
        attempt(strategy, None)
    unlimited = rows[0]
    checkpoint_peak = rows[2].peak_bytes
    attempt("memento", checkpoint_peak)
    rows[-1].strategy = "memento@checkpoint-peak"
    for text in budgets:
        attempt("memento", resolve_budget(text, unlimited.peak_bytes))
        rows[-1].strategy = f"memento@{text.strip()}"
    progress("done")
    print(file=sys.stderr)
    for row in rows:
        if unlimited.step_time_s > 0 and row.step_time_s == row.step_time_s:
            row.slowdown = row.step_time_s / unlimited.step_time_s
            row.overhead = row.slowdown - 1
    print(f"{'strategy':<26}{'budget':>12}{'peak':>12}{'fits':>6}{'step':>11}{'overhead':>10}{'loss':>10}")
    for r in rows:
        budget = format_bytes(r.budget_bytes) if r.budget_bytes else "-"
        print(f"{r.strategy:<26}{budget:>12}{format_bytes(r.peak_bytes):>12}{'yes' if r.fits else 'NO':>6}"
              f"{r.step_time_s * 1e3:>9.1f}ms{r.overhead * 100:>+9.1f}%{r.loss:>10.4f}"
              + (f"  {r.note}" if r.note else ""))  # fmt: skip
    if device.type == "cpu":
        print("peaks: storages made during the step, followed by a dispatch mode (PyTorch's CPU "
              "allocator keeps no statistics); memento's budget rows run with cpu_memory='all', which slows them")  # fmt: skip
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        meta = {"model": args.model, "args": kwargs, "device": str(device), "steps": args.steps,
                "torch": torch.__version__, "date": time.strftime("%Y-%m-%d")}  # fmt: skip
        (out / "results.json").write_text(json.dumps({"setup": meta, "runs": [asdict(r) for r in rows]}, indent=2))
        print(f"wrote {out / 'results.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
