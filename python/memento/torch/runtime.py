"""memento.torch.Runtime: a byte budget for a PyTorch model's saved activations.

    rt = memento.torch.Runtime(budget="8GiB").attach(model)
    for x, y in data:
        with rt.step():  # optional: without it a step ends when backward released everything
            loss = loss_fn(model(x), y)
            loss.backward()
        print(rt.last)

The first step is observed (it runs as checkpointing every region); libmemento plans from it
which saved tensors to keep, offload to its pinned host pool or recompute, and every later
step of the same shape carries that plan out. Another shape is observed and planned anew."""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Any, Iterator, Optional, Sequence, Union

import torch
from torch import nn

from memento._lib import MementoError, lib
from memento.bytes import format_bytes, parse_bytes
from memento.torch import allocator
from memento.torch.entries import Saved
from memento.torch.errors import BudgetError, UnsupportedError
from memento.torch.link import measure_link
from memento.torch.stats import StepStats
from memento.torch.step import Step



def _default_device() -> torch.device:
    return torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else torch.device("cpu")


def _check_memento_device(device: torch.device) -> None:
    """Makes libmemento's backend the one holding `device`'s tensors (before it starts)."""
    configured = os.environ.get("MEMENTO_DEVICE")
    wanted = "host" if device.type == "cpu" else f"cuda:{device.index or 0}"
    if configured is None:
        os.environ["MEMENTO_DEVICE"] = wanted
        return
    kind = configured.split(":", 1)[0]
    index = configured.split(":", 1)[1] if ":" in configured else "0"
    other_gpu = device.type == "cuda" and kind == "cuda" and index != str(device.index or 0)
    if (device.type == "cpu" and kind != "host") or (device.type == "cuda" and kind != "cuda") or other_gpu:
        raise MementoError(
            f"MEMENTO_DEVICE={configured!r} does not hold {device} tensors: memento.torch needs "
            f"the backend of the model's device ({wanted}; host for CPU tensors, cuda[:N] for "
            "CUDA tensors; sim predicts, it does not run PyTorch)"
        )


def find_regions(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The model's repeated blocks: the children of its outermost nn.ModuleLists (two or more)."""
    lists: list[str] = []
    regions: list[tuple[str, nn.Module]] = []
    for name, module in model.named_modules():
        if not isinstance(module, nn.ModuleList) or len(module) < 2:
            continue
        if any(name.startswith(outer + ".") for outer in lists):
            continue
        lists.append(name)
        regions += [(f"{name}.{i}" if name else str(i), child) for i, child in enumerate(module)]
    return regions


class Runtime:
    """memento for one model (see the module's docstring).

    budget: bytes (int) or text as MEMENTO_BUDGET takes it ("8GiB"); None takes
        MEMENTO_BUDGET (or MEMENTO_CONF's budget), else the device's capacity.
    min_bytes: saved storages smaller than this stay untracked (kept).
    link_bandwidth: "measure" (a timed copy each way at start), bytes/s, or 0 (never offload).
    device: the model's device; default cuda when PyTorch sees one, else cpu.
    cpu_memory: what the budget covers on the CPU, whose allocator keeps no statistics:
        "saved" (the tracked saved activations alive) or "all" (every storage a step made,
        followed by a dispatch mode: slower; only in `with rt.step()` steps). On cuda the
        budget is always peak allocated memory.
    async_offload: copies out overlap the compute, memento holding each storage until its
        copy has read it (default on cuda). Off (the CPU's default), the copy completes before
        the step goes on, so the memory comes back exactly where the plan expects it.
    """

    def __init__(
        self,
        budget: Union[int, str, None] = None,
        *,
        min_bytes: int = 64 << 10,
        link_bandwidth: Union[str, float] = "measure",
        device: Union[str, torch.device, None] = None,
        cpu_memory: str = "saved",
        async_offload: Optional[bool] = None,
        verbose: bool = False,
    ) -> None:
        self.device = torch.device(device) if device is not None else _default_device()
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise MementoError(
                f"memento.torch: device {self.device} asked for, but PyTorch sees no CUDA device "
                f"(torch {torch.__version__}, CUDA {torch.version.cuda}); use device='cpu'"
            )
        if self.device.type == "cuda" and self.device.index is None:
            self.device = torch.device("cuda", torch.cuda.current_device())
        if self.device.type not in ("cpu", "cuda"):
            raise MementoError(f"memento.torch: device {self.device} is not supported; accepted: cpu, cuda[:N]")
        if cpu_memory not in ("saved", "all"):
            raise ValueError(f"cpu_memory: {cpu_memory!r}; accepted: 'saved', 'all'")
        self.cpu_memory = cpu_memory
        self.async_offload = self.device.type == "cuda" if async_offload is None else async_offload
        if min_bytes < 0:
            raise ValueError(f"min_bytes must be >= 0, got {min_bytes}")
        _check_memento_device(self.device)
        self.lib = lib()
        if budget is not None:
            self.lib.call("memento_set_budget", parse_bytes(budget, "budget"))
        self.budget: int = self.lib.call("memento_get_budget")
        self.min_bytes = min_bytes
        self.verbose = verbose
        self.link = self._set_link(link_bandwidth)
        self.memento_allocator = allocator.installed()
        self.history: list[StepStats] = []
        self.pending_errors: list[BaseException] = []
        self.in_forward = False
        self._depth = 0
        self._recomputing = 0
        self._step: Optional[Step] = None
        self._model: Optional[nn.Module] = None
        self._hooks: list[Any] = []
        self._contexts: list[Any] = []
        self._regions: list[tuple[str, nn.Module]] = []
        self._warned: set[str] = set()

    def _set_link(self, link: Union[str, float]) -> tuple[float, float]:
        if link == "measure":
            d2h, h2d = measure_link(self.device)
        elif isinstance(link, (int, float)) and not isinstance(link, bool) and link >= 0:
            d2h = h2d = float(link)
        else:
            raise ValueError(f"link_bandwidth: {link!r}; accepted: 'measure', bytes/s >= 0 (0: never offload)")
        self.lib.call("memento_set_link_bandwidth", d2h, h2d)
        return d2h, h2d

    # ---- attaching ---------------------------------------------------------------------------
    def attach(self, model: nn.Module, regions: Optional[Sequence[Union[str, nn.Module]]] = None) -> "Runtime":
        """Tracks `model`'s saved activations; `regions` are the modules memento may rerun
        (names or modules; default: find_regions(model)). Returns self."""
        if self._model is not None:
            raise MementoError("memento.torch: this Runtime is attached already; detach() first")
        compiled = getattr(getattr(torch, "_dynamo", None), "eval_frame", None)
        if compiled is not None and isinstance(model, getattr(compiled, "OptimizedModule", ())):
            raise UnsupportedError(
                "memento.torch cannot attach to a torch.compile'd module: compiled graphs save "
                "activations memento does not see. Attach to the module before compiling it is not "
                "supported either; use torch.compile's activation_memory_budget, or run eagerly"
            )
        for p in model.parameters():
            if p.device != self.device:
                raise MementoError(
                    f"memento.torch: the model has parameters on {p.device}, this Runtime runs on "
                    f"{self.device} (Runtime(device=...))"
                )
            break
        self._regions = self._resolve_regions(model, regions)
        self._hooks.append(model.register_forward_pre_hook(self._forward_begin))
        self._hooks.append(model.register_forward_hook(self._forward_end, always_call=True))
        for name, module in self._regions:
            self._hooks.append(module.register_forward_pre_hook(self._region_hook(name), with_kwargs=True))
            self._hooks.append(module.register_forward_hook(self._region_exit, always_call=True))
        self._model = model
        return self

    @staticmethod
    def _resolve_regions(model: nn.Module, regions: Optional[Sequence[Union[str, nn.Module]]]) -> list[tuple[str, nn.Module]]:
        if regions is None:
            return find_regions(model)
        named = dict(model.named_modules())
        names = {id(m): n for n, m in named.items()}
        out = []
        for r in regions:
            if isinstance(r, str):
                if r not in named:
                    raise MementoError(f"memento.torch: no module named {r!r} in the model (regions=)")
                out.append((r, named[r]))
            elif isinstance(r, nn.Module) and id(r) in names:
                out.append((names[id(r)], r))
            else:
                raise MementoError(f"memento.torch: region {r!r} is not a module of the model; accepted: module names or submodules")
        if any(m is model for _, m in out):
            raise MementoError("memento.torch: the whole model cannot be a region; name its blocks")
        return out

    def detach(self) -> None:
        """Stops tracking (ends an open step first)."""
        if self._step is not None:
            self.end_step(self._step)
        for h in self._hooks:
            h.remove()
        self._hooks.clear()
        self._model = None

    @property
    def regions(self) -> list[str]:
        return [name for name, _ in self._regions]

    @property
    def last(self) -> Optional[StepStats]:
        """The last step's statistics (None before the first)."""
        return self.history[-1] if self.history else None

    def set_budget(self, budget: Union[int, str]) -> None:
        """A new budget: the next step is planned for it."""
        self.lib.call("memento_set_budget", parse_bytes(budget, "budget"))
        self.budget = self.lib.call("memento_get_budget")

    def parameter_storages(self) -> set[int]:
        if self._model is None:
            return set()
        out = set()
        for t in list(self._model.parameters()) + list(self._model.buffers()):
            try:
                out.add(t.untyped_storage().data_ptr())
            except RuntimeError:  # a sharded parameter (FSDP2's DTensor) has no local storage
                continue
        return out

    # ---- steps ---------------------------------------------------------------------------
    @contextmanager
    def step(self) -> Iterator["Runtime"]:
        """One training step (forward and backward) as a context."""
        if self._model is None:
            raise MementoError("memento.torch: attach(model) before Runtime.step()")
        self.raise_pending()
        if self._step is not None:
            raise MementoError("memento.torch: a step is already open (steps do not nest)")
        oom_before = allocator.out_of_memory_count()
        step = self._step = self._begin(auto=False)
        try:
            yield self
        except BaseException as error:
            self._abandon(step)
            oom = allocator.translate_oom(oom_before, error)
            if oom is not None:
                raise oom from error
            raise
        self.end_step(step)
        self.raise_pending()

    def _begin(self, auto: bool) -> Step:
        try:
            return Step(self, auto)
        except MementoError as error:
            if "already open" in str(error):
                raise MementoError(
                    "memento.torch: libmemento has a step open already: another Runtime in this "
                    "process is inside a step (libmemento is process-wide: one step at a time), "
                    f"or a forward outside rt.step() left one open ({error})"
                ) from error
            raise

    def end_step(self, step: Step) -> None:
        if self._step is step:
            self._step = None
        stats = step.end()
        self.history.append(stats)
        if self.verbose:
            print(f"memento: {stats}", flush=True)
        if stats.new_plan and not stats.plan_fits:
            smallest = -(-int(stats.predicted_peak / (1 - stats.margin) * 1.01) // 4096) * 4096
            self.pending_errors.append(
                BudgetError(
                    f"memento: the budget of {format_bytes(stats.budget)} cannot be met for this "
                    f"model and batch: the best plan peaks at {format_bytes(stats.predicted_peak)} "
                    f"with every saved activation it can evict evicted; the smallest budget observed "
                    f"to fit is {format_bytes(smallest)}",
                    smallest,
                )
            )
        elif stats.phase == "planned" and stats.peak_bytes > stats.budget and not stats.retained:
            self.warn_once(
                "over",
                f"memento: step {stats.step} peaked at {format_bytes(stats.peak_bytes)}, over the "
                f"budget of {format_bytes(stats.budget)}: memory outside the saved activations grew",
            )

    def _abandon(self, step: Step) -> None:
        self._step = None
        try:
            step.end(keep=False)
        except Exception:  # the step's own error is the one to report
            pass

    def raise_pending(self) -> None:
        if self.pending_errors:
            error = self.pending_errors.pop(0)
            self.pending_errors.clear()
            raise error

    def warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            import warnings

            warnings.warn(message, RuntimeWarning, stacklevel=3)

    @contextmanager
    def recomputing(self) -> Iterator[None]:
        self._recomputing += 1
        try:
            yield
        finally:
            self._recomputing -= 1

    # ---- hooks ---------------------------------------------------------------------------
    def _forward_begin(self, module: nn.Module, args: Any) -> None:
        if self._recomputing:
            return
        if self._depth > 0:
            self._depth += 1
            return
        self.raise_pending()
        if self.device.type == "cuda" and torch.cuda.is_current_stream_capturing():
            raise UnsupportedError("memento.torch does not run inside CUDA graph capture: its copies and recomputes are decided at run time")
        if torch.is_grad_enabled() and self._step is None:
            self._step = self._begin(auto=True)
        ctx = torch.autograd.graph.saved_tensors_hooks(self._pack, self._unpack)
        ctx.__enter__()
        self._contexts.append(ctx)
        self._depth = 1  # only once nothing above can raise: _forward_end pops what this pushed
        self.in_forward = True

    def _forward_end(self, module: nn.Module, args: Any, output: Any) -> None:
        if self._recomputing:
            return
        if self._depth == 0:
            return  # _forward_begin raised before it pushed anything
        self._depth -= 1
        if self._depth > 0:
            return
        self._contexts.pop().__exit__(None, None, None)
        self.in_forward = False
        step = self._step
        if step is not None and step.auto and not step.live:
            self.end_step(step)

    def _region_hook(self, name: str) -> Any:
        def enter(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            if self._step is not None and not self._recomputing and self.in_forward:
                self._step.region_enter(module, name, args, kwargs)

        return enter

    def _region_exit(self, module: nn.Module, args: Any, output: Any) -> None:
        if self._step is not None and not self._recomputing:
            self._step.region_exit(module)

    def _pack(self, t: torch.Tensor) -> Any:
        is_compiling = getattr(getattr(torch, "compiler", None), "is_compiling", None)
        if is_compiling is not None and is_compiling():
            raise UnsupportedError("memento.torch does not track activations inside torch.compile; attach it to an eager model")
        step = self._step
        return t if step is None else step.pack(t)

    @staticmethod
    def _unpack(packed: Any) -> torch.Tensor:
        if isinstance(packed, Saved):
            return packed.entry.step.unpack(packed)
        return packed
