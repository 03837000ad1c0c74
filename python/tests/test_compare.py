"""python -m memento.torch.compare and the example, end to end on a tiny GPT-2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from memento.torch import compare

ROOT = Path(__file__).resolve().parents[2]
GPT2 = f"{ROOT / 'examples' / 'torch' / 'gpt2.py'}:make"
TINY = ["--arg", "preset=tiny", "--arg", "batch=4", "--arg", "seq=128"]


def test_compare_writes_the_fields_memento_compare_writes(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    assert compare.main(["--model", GPT2, *TINY, "--budget", "60%", "--steps", "2", "--out", str(tmp_path)]) == 0
    table = capsys.readouterr().out
    for name in ("none", "memento", "checkpoint", "save_on_cpu", "memento@checkpoint-peak", "memento@60%"):
        assert name in table
    runs = json.loads((tmp_path / "results.json").read_text())["runs"]
    assert [r["strategy"] for r in runs][:4] == ["none", "memento", "checkpoint", "save_on_cpu"]
    for r in runs:
        assert {"strategy", "budget_bytes", "peak_bytes", "fits", "step_time_s", "slowdown", "overhead"} <= r.keys()
    none = runs[0]
    assert none["peak_bytes"] > 0 and none["slowdown"] == 1.0
    assert runs[2]["peak_bytes"] < none["peak_bytes"]  # checkpointing saves memory
    assert next(r for r in runs if r["strategy"] == "memento@60%")["fits"]
    for r in runs:
        if r["fits"]:
            assert r["loss"] == none["loss"], r  # every strategy trains the same bits


def test_compare_rejects_a_bad_model_spec() -> None:
    try:
        compare.main(["--model", "no_such_module_here"])
    except SystemExit as exit:
        assert "MODULE:FUNCTION" in str(exit.code)
    else:
        raise AssertionError("a bad --model was accepted")


def test_the_example_trains_under_memento_budget() -> None:
    env = dict(os.environ, MEMENTO_BUDGET="4MiB", PYTHONPATH=str(ROOT / "python"))
    env.pop("MEMENTO_DEVICE", None)
    out = subprocess.run([sys.executable, str(ROOT / "examples" / "torch" / "train_gpt2.py"), "--steps", "3",
                          "--seq", "64"], env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "budget 4.00 MiB" in out.stdout
    assert "step 3 (planned)" in out.stdout
