#!/usr/bin/env bash
# Trains MODEL for 3 steps on DEVICE under 100/70/50/35% of its unlimited peak with every
# eviction policy, and runs the same on SIM_DEVICE (the prediction), printing one table:
# peak, median step time after the first, slowdown against the unlimited run.
# Usage: scripts/budget-sweep.sh MEMENTO_BINARY DEVICE SIM_DEVICE MODEL DTYPE
set -euo pipefail
if (($# != 5)); then
  echo "usage: $0 MEMENTO_BINARY DEVICE SIM_DEVICE MODEL DTYPE (e.g. build/memento cuda sim:h200 gpt2-124m bf16)" >&2
  exit 2
fi
memento=$1 device=$2 sim=$3 model=$4 dtype=$5
run() {  # device budget policy -> "peak seconds" or "OOM"
  local out
  if out=$(timeout 300 "$memento" train --model "$model" --dtype "$dtype" --steps 3 --summary \
             --device "$1" ${2:+--budget "$2"} --policy "$3" 2>&1); then
    sed -n 's/^summary: peak_reserved=\([0-9]*\) step_seconds=\([0-9.]*\).*/\1 \2/p' <<<"$out"
  else
    echo "OOM"
  fi
}
ratio() { [[ $1 == OOM ]] && echo "-" || awk -v a="$2" -v b="$3" 'BEGIN { printf "%.2fx", a / b }'; }
read -r peak base <<<"$(run "$device" '' lru)"
read -r sim_peak sim_base <<<"$(run "$sim" '' lru)"
echo "$model $dtype on $device: unlimited peak $((peak >> 20)) MiB, step ${base} s;" \
  "$sim predicts $((sim_peak >> 20)) MiB, ${sim_base} s"
printf '%-10s %7s %10s %10s %9s %11s %9s\n' policy budget "peak MiB" "step s" slowdown \
  "sim step s" "sim slow"
for pct in 100 70 50 35; do
  budget=$((peak * pct / 100))
  for policy in lru largest recompute offload dtr capuchin auto; do
    read -r p s <<<"$(run "$device" "$budget" "$policy")"
    read -r sp ss <<<"$(run "$sim" "$budget" "$policy")"
    printf '%-10s %6s%% %10s %10s %9s %11s %9s\n' "$policy" "$pct" \
      "$([[ $p == OOM ]] && echo OOM || echo $((p >> 20)))" "${s:--}" "$(ratio "$p" "${s:-0}" "$base")" \
      "${ss:--}" "$(ratio "$sp" "${ss:-0}" "$sim_base")"
  done
done
