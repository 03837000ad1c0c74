#!/usr/bin/env bash
# The budget-only path against the static strategies on sim (virtual time, deterministic):
# the main job's sim half at 70% and 50%, and the seed rows with eager and fused attention.
# One `memento compare` per row, its default 3 steps. Prints, per row and budget, the
# budget path's step time over the best static strategy's, and its overhead over
# every-layer's. Usage: scripts/budget-bench.sh [path/to/memento]
set -euo pipefail
memento=${1:-build/memento}
[[ -x $memento ]] || { echo "scripts/budget-bench.sh: no memento at $memento; build first" >&2; exit 2; }
printf '%-44s %-8s %12s %14s %14s\n' row budget "budget step" "/ best static" "/ every-layer"
row() {
  local label=$1; shift
  "$memento" compare "$@" --strategies budget,every-layer,sqrt,selective,mixed 2>/dev/null |
    awk -v label="$label" '
      /^strategy/ { table = 1; next }
      table && NF == 0 { table = 0 }
      table && $1 != "unlimited" && $7 == "yes" {
        b = $4; step = $8 * ($9 == "s" ? 1000 : 1); ovh = $10; sub(/%/, "", ovh); ovh += 0
        if ($1 == "budget") { bs[b] = step; bo[b] = ovh; order[++n] = b }
        else {
          if (!(b in best) || step < best[b]) best[b] = step
          if ($1 == "every-layer") ev[b] = ovh
        }
      }
      END {
        for (i = 1; i <= n; ++i) {
          b = order[i]
          printf "%-44s %-8s %9.2f ms %14.3f %14.2f\n", label, b, bs[b], bs[b] / best[b],
                 (ev[b] > 0 ? bo[b] / ev[b] : 0)
        }
      }'
}
row "main job: gpt2-124m b8 fp32 a100-40gb" --model gpt2-124m --batch 8 --device sim:a100-40gb --budget 70%,50%
for att in eager fused; do
  row "gpt2-124m b32 a100-40gb 8GB $att" --model gpt2-124m --batch 32 --device sim:a100-40gb --budget 8GB --attention $att
  row "gpt2-1.5b b16 rtx4090 20GB $att" --model gpt2-1.5b --batch 16 --device sim:rtx4090 --budget 20GB --attention $att
  row "gpt-j-6b b8 a100-40gb 32GB $att" --model gpt-j-6b --batch 8 --device sim:a100-40gb --budget 32GB --attention $att
done
