#!/usr/bin/env bash
# Issue 16's GPU checks in one call, from a build carried to a GPU machine
# (../shared/tools/gpu-pack.sh, then `bash .gpu-carry/gpu-run.sh scripts/gpu-calibrate.sh`),
# or on any machine with a GPU and a build (MEMENTO=build-gpu/memento):
#   1. memento calibrate --device cuda: every kernel of gpt2-124m b8 bf16 timed by cuda
#      events (the runtime's device spans), the links, overlap, allocation, host AdamW;
#   2. memento compare on cuda (the recorded H200 run's command): the rates cuda now states,
#      the sim's master weights, and every kernel's device span in the traces;
#   3. memento calibrate --fit from that run's results.json and device spans;
#   4. the same compare on sim with the measured and the fitted profile, and on sim:PROFILE,
#      then one table of the cuda run against the three predictions.
# Results go under $OUT (default out/gpu-calibrate); about 3 minutes on an H200.
# DEVICE=host runs the same steps on the host backend with gpt2-tiny (a dry run of the
# script on a machine without a GPU).
set -euo pipefail
cd "$(dirname "$0")/.."
memento=${MEMENTO:-${MEMENTO_BUILD:-build-gpu}/memento}
out=${OUT:-out/gpu-calibrate}
mkdir -p "$out"
device=${DEVICE:-cuda}
if [ "$device" = cuda ]; then
  gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)
  # As the cuda backend's datasheet_profile_of_gpu matches (whole words); an unknown GPU is
  # fitted against h100-sxm's datasheet, and says so.
  case " $gpu " in
    *" GH200 "*) base=h100-sxm; echo "no datasheet for $gpu: fitting against h100-sxm" ;;
    *" H200 "*) base=h200 ;; *" H100 "*) base=h100-sxm ;; *" A100"*80GB*) base=a100-80gb ;;
    *" A100"*) base=a100-40gb ;; *" RTX 4090 "*) base=rtx4090 ;; *" L4 "*) base=l4 ;;
    *) base=h100-sxm; echo "no datasheet for $gpu: fitting against h100-sxm" ;;
  esac
  workload=(--model gpt2-124m --batch 8 --dtype bf16)
else
  gpu=$device base=a100-40gb workload=(--model gpt2-tiny)
fi
{ echo "$gpu (datasheet profile $base)"; date -u +%F; } | tee "$out/device.txt"
runs=(--budget 70%,50% --steps 6 --strategies none,every-layer,selective,mixed,recompute,offload,dtr,auto)

# The cuda event timing has not run on a GPU before: if it fails, time one kernel at a time.
if ! "$memento" calibrate --device "$device" "${workload[@]}" --out "$out/device-profile.json" \
  > "$out/calibrate-device.txt" 2>&1; then
  echo "calibrate --timing stream failed (above); retrying with --timing blocking" |
    tee -a "$out/calibrate-device.txt"
  "$memento" calibrate --device "$device" "${workload[@]}" --timing blocking \
    --out "$out/device-profile.json" >> "$out/calibrate-device.txt" 2>&1
fi
cat "$out/calibrate-device.txt"
"$memento" compare --device "$device" "${workload[@]}" "${runs[@]}" --out "$out/compare-device" 2>&1 |
  tee "$out/compare-device.txt"
"$memento" calibrate --fit "$out/compare-device/results.json" \
  --trace "$out/compare-device/trace-unlimited.json" --base "$base" --out "$out/fit-profile.json" 2>&1 |
  tee "$out/calibrate-fit.txt"
for sim in "sim:$out/device-profile.json" "sim:$out/fit-profile.json" "sim:$base"; do
  name=$(basename "${sim#sim:}" .json)
  "$memento" compare --device "$sim" "${workload[@]}" "${runs[@]}" --out "$out/compare-$name" \
    > "$out/compare-$name.txt" 2>&1
done
# The traces are large: keep the cuda run's unlimited one (the fit's input) and its and the
# fitted sim's none at 70% (the H200 paid about twice the sim's time per recompute: their
# device spans show where), drop the rest.
find "$out" -name 'trace-*.json' ! -path '*/compare-device/trace-unlimited.json' \
  ! -path '*/compare-device/trace-none-70pct.json' \
  ! -path '*/compare-fit-profile/trace-none-70pct.json' -delete
python3 - "$out" "$base" <<'PY' | tee "$out/table.txt"
import json, os, sys
out, base = sys.argv[1], sys.argv[2]
def rows(name):
    d = json.load(open(os.path.join(out, name, "results.json")))
    r = {("unlimited", "-"): d["unlimited"]}
    r.update({(x["strategy"], x["budget"]): x for x in d["runs"]})
    return r
cols = ["compare-device", "compare-device-profile", "compare-fit-profile", "compare-" + base]
data = [rows(c) for c in cols]
print(f"{'strategy':<12} {'budget':<6}" + "".join(f"{c[8:]:>22}" for c in cols))
for key in data[0]:
    cells = []
    for d in data:
        x = d.get(key)
        if not x or not x.get("step_time_s"):
            cells.append(f"{'-':>22}")
        else:
            tf = (x.get("recompute_flops") or 0) / 1e12
            cells.append(f"{x['step_time_s'] * 1e3:>10.2f} ms {tf:>5.2f} TF")
    print(f"{key[0]:<12} {key[1]:<6}" + "".join(cells))
PY
