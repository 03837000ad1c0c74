"""Bad input and unsupported programs get clear errors; nothing is silently wrong."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import batch, make_net, train

import memento
import memento.torch as mt


def test_byte_sizes():
    assert memento.parse_bytes("8GiB") == 8 << 30
    assert memento.parse_bytes("512MB") == 512 * 10**6
    assert memento.parse_bytes("1.5G") == 3 << 29
    assert memento.parse_bytes(4096) == 4096
    for bad in ("", "8XB", "-1", "0", "GiB"):
        with pytest.raises(ValueError, match="budget"):
            memento.parse_bytes(bad, "budget")
    assert memento.format_bytes(3 << 29) == "1.50 GiB"


def test_a_budget_that_cannot_be_met_names_the_smallest_that_fits():
    net = make_net()
    rt = mt.Runtime(budget="4KiB", min_bytes=0, link_bandwidth=0.0).attach(net)
    with pytest.raises(mt.BudgetError, match="smallest budget observed to fit is") as caught:
        with rt.step():
            net(batch(0)).backward()
    smallest = caught.value.smallest_budget
    assert smallest > 4096
    # The budget named fits, or names a larger one once a step measured what the plan
    # missed (libmemento widens its margin); it settles within a few steps.
    for _ in range(4):
        rt.set_budget(smallest)
        try:
            train(net, 2, rt.step)
            break
        except mt.BudgetError as error:
            assert error.smallest_budget > smallest
            smallest = error.smallest_budget
    else:
        pytest.fail(f"no budget settled; the last named was {smallest}")
    assert rt.last.phase == "planned" and rt.last.plan_fits
    assert rt.last.peak_bytes <= rt.budget
    rt.detach()


class _Chain(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.blocks = torch.nn.ModuleList(torch.nn.Linear(64, 64) for _ in range(2))


def test_in_place_change_of_a_saved_tensor_is_refused():
    """Autograd's own check cannot see it (the saved value is memento's): memento's must."""

    class InPlace(_Chain):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.blocks[0](x)
            z = self.blocks[1](y)  # saves y
            y.mul_(2)  # changes what the second linear saved
            return z.sum()

    rt = mt.Runtime(budget="1GiB", min_bytes=0, link_bandwidth=0.0).attach(InPlace())
    with pytest.raises(mt.UnsupportedError, match="in-place"):
        with rt.step():
            rt._model(torch.randn(8, 64, requires_grad=True)).backward()  # type: ignore[misc]
    rt.detach()


def test_in_place_change_of_a_region_input_is_refused():
    """A region reruns from its input: changed in place after the region ran, the rerun would
    compute other values (plain PyTorch would not notice either, as nothing saved it)."""

    class Doubled(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = torch.nn.Linear(64, 64)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.tanh(self.fc(x * 2))  # nothing saves x itself

    class InputInPlace(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.blocks = torch.nn.ModuleList(Doubled() for _ in range(2))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = x * 1
            y = self.blocks[0](h)
            h.add_(1)
            return (self.blocks[1](y) + h).sum()

    rt = mt.Runtime(budget="1GiB", link_bandwidth=0.0, min_bytes=0).attach(InputInPlace())
    with pytest.raises(mt.UnsupportedError, match="in-place operation.*rerunning region blocks.0"):
        with rt.step():  # observed: block 0 is checkpointed, so its tanh output is rerun
            rt._model(torch.randn(8, 64, requires_grad=True)).backward()  # type: ignore[misc]
    rt.detach()


def test_conjugate_views_and_empty_tensors_stay_correct():
    class Odd(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.blocks = torch.nn.ModuleList(torch.nn.Linear(64, 64) for _ in range(2))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            c = torch.complex(self.blocks[0](x), self.blocks[1](x))
            empty = x[:0] * 2  # a saved tensor of no bytes
            return (c.conj() * c.conj()).real.sum() + (empty * empty).sum()

    def grads(use: bool) -> list[torch.Tensor]:
        torch.manual_seed(0)
        model = Odd()
        rt = mt.Runtime(budget="1GiB", min_bytes=0, link_bandwidth=0.0).attach(model) if use else None
        for _ in range(2):
            model.zero_grad()
            with rt.step() if rt else torch.enable_grad():
                model(torch.ones(8, 64)).backward()
        if rt:
            rt.detach()
        return [p.grad.clone() for p in model.parameters()]

    for a, b in zip(grads(False), grads(True)):
        assert torch.equal(a, b)


def test_an_abandoned_step_leaves_the_runtime_usable_and_two_runtimes_are_named():
    net = make_net()
    rt = mt.Runtime(budget="1GiB", min_bytes=0, link_bandwidth=0.0).attach(net)
    with pytest.raises(RuntimeError, match="the user's own error"):
        with rt.step():
            net(batch(0))
            raise RuntimeError("the user's own error")
    other = mt.Runtime(budget="1GiB", min_bytes=0, link_bandwidth=0.0).attach(make_net())
    with rt.step():
        with pytest.raises(memento.MementoError, match="another Runtime"):
            with other.step():
                pass
        net(batch(0)).backward()
    assert rt.last.tracked > 0
    other.detach()
    rt.detach()


def test_compiled_modules_are_refused():
    compiled = torch.compile(make_net())
    with pytest.raises(mt.UnsupportedError, match="torch.compile"):
        mt.Runtime(budget="1GiB", link_bandwidth=0.0).attach(compiled)


def test_bad_arguments_name_what_was_wrong():
    with pytest.raises(ValueError, match="budget"):
        mt.Runtime(budget="lots")
    with pytest.raises(ValueError, match="link_bandwidth"):
        mt.Runtime(budget="1GiB", link_bandwidth="fast")
    rt = mt.Runtime(budget="1GiB", link_bandwidth=0.0)
    with pytest.raises(memento.MementoError, match="no module named 'nope'"):
        rt.attach(make_net(), regions=["nope"])
    with pytest.raises(memento.MementoError, match="attach"):
        with rt.step():
            pass
    with pytest.raises(memento.MementoError, match="at most|capacity"):
        mt.Runtime(budget="1TiB", link_bandwidth=0.0)


def test_the_allocator_needs_cuda():
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    with pytest.raises(memento.MementoError, match="no CUDA device"):
        mt.use_allocator()
    assert issubclass(mt.OutOfMemoryError, torch.cuda.OutOfMemoryError)


def _run(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    python_dir = str(Path(__file__).resolve().parents[1])
    full = {k: v for k, v in os.environ.items() if not k.startswith("MEMENTO_") or k == "MEMENTO_LIBRARY"}
    full.update(env, PYTHONPATH=python_dir + os.pathsep + full.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-c", code], env=full, capture_output=True, text=True, timeout=120)


def test_memento_budget_from_the_environment():
    out = _run("import memento.torch as mt; print(mt.Runtime(link_bandwidth=0.0).budget)", MEMENTO_BUDGET="96MiB")
    assert out.returncode == 0, out.stderr
    assert int(out.stdout) == 96 << 20
    out = _run("import memento.torch as mt; mt.Runtime(link_bandwidth=0.0)", MEMENTO_BUDGET="96 parsecs")
    assert out.returncode != 0 and "MEMENTO_BUDGET" in out.stderr
    out = _run("import memento.torch as mt; mt.Runtime(link_bandwidth=0.0)", MEMENTO_DEVICE="sim:a100-40gb")
    assert out.returncode != 0 and "MEMENTO_DEVICE" in out.stderr


def test_autocast_weight_copies_are_not_tracked():
    from memento.torch.step import is_weight_cast

    seen = []
    lin = torch.nn.Linear(64, 64)
    with torch.autograd.graph.saved_tensors_hooks(lambda t: seen.append(t) or t, lambda t: t):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            lin(torch.randn(8, 64, requires_grad=True)).sum()
    casts = [t for t in seen if is_weight_cast(t)]
    assert len(casts) == 1 and casts[0].shape == (64, 64) and casts[0].dtype == torch.bfloat16
    assert len(seen) == 2  # and the input's cast, an activation, is not taken for a weight


def test_double_backward_is_refused():
    net = make_net()
    rt = mt.Runtime(budget="1GiB", min_bytes=0, link_bandwidth=0.0).attach(net)
    with pytest.raises(mt.UnsupportedError, match="double backward"):
        with rt.step():
            loss = net(batch(0))
            torch.autograd.grad(loss, list(net.parameters()), create_graph=True)
    train(net, 1, rt.step)  # still usable afterwards
    rt.detach()


def test_a_missing_library_and_a_missing_device_are_named():
    out = _run("import memento.torch as mt; mt.Runtime(link_bandwidth=0.0)", MEMENTO_LIBRARY="/nowhere/libmemento.so")
    assert out.returncode != 0 and "MEMENTO_LIBRARY='/nowhere/libmemento.so' is not a file" in out.stderr
    if not torch.cuda.is_available():
        with pytest.raises(memento.MementoError, match="PyTorch sees no CUDA device"):
            mt.Runtime(device="cuda", link_bandwidth=0.0)
