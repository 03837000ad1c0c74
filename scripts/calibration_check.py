#!/usr/bin/env python3
"""How well the sim, calibrated on this machine's host backend, predicts the host.

Runs `memento calibrate --device host`, then the same `memento compare` on host (REPEATS
times: CPU timings are noisy, so each row's step is the median over the repeats) and on
sim:PROFILE.json, and prints one row per strategy and budget: the host's median step, the
sim's prediction and the error. Usage:

    scripts/calibration_check.py [--memento build/memento] [--repeats 3] [--steps 5]
                                 [--out DIR] [-- EXTRA COMPARE ARGS]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile


def compare(memento: str, device: str, out: str, steps: int, extra: list[str]) -> dict:
    subprocess.run([memento, "compare", "--device", device, "--steps", str(steps), "--out", out]
                   + extra, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with open(os.path.join(out, "results.json")) as f:
        data = json.load(f)
    rows = {("unlimited", "-"): data["unlimited"]}
    for run in data["runs"]:
        rows[(run["strategy"], run["budget"])] = run
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--memento", default="build/memento")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--out", default=None, help="keep the files here")
    parser.add_argument("extra", nargs="*", help="more compare arguments, after --")
    args = parser.parse_args()
    if args.repeats < 1 or args.steps < 2:
        parser.error("--repeats must be >= 1 and --steps >= 2 (the first step is not timed)")
    out = args.out or tempfile.mkdtemp(prefix="memento-calibration-")
    os.makedirs(out, exist_ok=True)
    profile = os.path.join(out, "host-profile.json")
    subprocess.run([args.memento, "calibrate", "--device", "host", "--out", profile], check=True,
                   stdout=subprocess.DEVNULL)
    sim = compare(args.memento, "sim:" + profile, os.path.join(out, "sim"), args.steps, args.extra)
    hosts = [compare(args.memento, "host", os.path.join(out, f"host-{i}"), args.steps, args.extra)
             for i in range(args.repeats)]
    print(f"{'strategy':<12} {'budget':<6} {'host ms':>9} {'spread':>13} {'sim ms':>9} {'error':>7}")
    errors = []
    for key, predicted in sim.items():
        measured = [h[key]["step_time_s"] for h in hosts if key in h and h[key].get("step_time_s")]
        if not measured or not predicted.get("step_time_s"):
            continue
        host = statistics.median(measured)
        error = predicted["step_time_s"] / host - 1
        errors.append(abs(error))
        spread = f"{min(measured) * 1e3:.1f}-{max(measured) * 1e3:.1f}"
        print(f"{key[0]:<12} {key[1]:<6} {host * 1e3:9.2f} {spread:>13} "
              f"{predicted['step_time_s'] * 1e3:9.2f} {error * 100:+6.1f}%")
    print(f"rows {len(errors)}; within 20%: {sum(e <= 0.2 for e in errors)}; "
          f"median |error| {statistics.median(errors) * 100:.1f}%; files in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
