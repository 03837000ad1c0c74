#!/usr/bin/env bash
# The README's seed table: three published activation-checkpointing results reproduced on
# the sim backend. For each row, every strategy runs at the row's budget; the table gives
# every-layer checkpointing (HF gradient_checkpointing) beside the fastest strategy that fits.
# Usage: scripts/seed-table.sh [build/memento] [eager|fused]   (the attention; default eager)
set -euo pipefail
cd "$(dirname "$0")/.."
memento=${1:-build/memento}
attention=${2:-eager}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
rows=(
  "gpt2-124m --batch 32 --device sim:a100-40gb --budget 8GB"
  "gpt2-1.5b --batch 16 --device sim:rtx4090 --budget 20GB"
  "gpt-j-6b --batch 8 --device sim:a100-40gb --budget 32GB"
)
i=0
for row in "${rows[@]}"; do
  # shellcheck disable=SC2086
  "$memento" compare --model $row --attention "$attention" --strategies all,optimal+dtr --steps 3 \
    --out "$out/$i" >/dev/null 2>&1
  i=$((i + 1))
done
python3 - "$out" "${#rows[@]}" <<'PY'
import json, sys
out, n = sys.argv[1], int(sys.argv[2])
gib = 2**30
print(f"| model, batch, device ({json.load(open(f'{out}/0/results.json'))['assumptions']['attention']} attention) | unlimited peak | budget | every-layer | memento's best | best / every-layer |")
print(f"|---|---|---|---|---|---|")
for i in range(n):
    d = json.load(open(f"{out}/{i}/results.json"))
    a, u = d["assumptions"], d["unlimited"]
    runs = d["runs"]
    every = next(r for r in runs if r["strategy"] == "every-layer")
    fit = [r for r in runs if r["fits"]]
    best = min(fit, key=lambda r: r["overhead"]) if fit else None
    def cell(r):
        if not r["fits"]:
            return "does not fit"
        return f"{r['overhead']*100:+.1f}% ({r['peak_bytes']/gib:.2f} GiB)"
    ratio = (f"{best['overhead']/every['overhead']:.2f}"
             if best and every["fits"] and every["overhead"] > 0 else "-")
    print(f"| {a['model']} b{a['batch']} seq {a['seq']} {a['dtype']}, AdamW on {a['optimizer_state']}, "
          f"{a['device']} | {u['peak_bytes']/gib:.2f} GiB | {runs[0]['budget']} | {cell(every)} | "
          f"{best['strategy'] + ' ' + cell(best) if best else 'nothing fits'} | {ratio} |")
PY
