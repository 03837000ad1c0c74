#!/usr/bin/env bash
# On the device machine, from a build carried there (../shared/tools/gpu-pack.sh packs it,
# gpu-run.sh unpacks it and sets MEMENTO_BUILD): every test with the cuda suites running,
# then `memento compare` of gpt2-124m bf16 on cuda, the run whose figures of 2026-12-04 are
# in docs/RESULTS.md. Writes ctest.txt, compare.txt and compare-cuda/ under $OUT.
#   run: bash .gpu-carry/gpu-run.sh bash scripts/gpu-carry-check.sh
set -u
out=${OUT:-/tmp/memento-gpu-out}
mkdir -p "$out"
: "${MEMENTO_BUILD:?run through gpu-run.sh, which sets MEMENTO_BUILD}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"
start=$(date +%s)
ctest --test-dir "$MEMENTO_BUILD" -j 12 --timeout 150 --output-on-failure >"$out/ctest.txt" 2>&1
echo "ctest exit $? in $(($(date +%s) - start)) s" | tee -a "$out/ctest.txt"
grep -E "tests passed|\(Failed\)|\(Timeout\)|Not Run" "$out/ctest.txt" | head -40
start=$(date +%s)
timeout 240 "$MEMENTO_BUILD/memento" compare --model gpt2-124m --batch 8 --dtype bf16 \
  --budget 70%,50% --steps 4 --device cuda --strategies every-layer,selective,mixed,auto \
  --out "$out/compare-cuda" >"$out/compare.txt" 2>&1
echo "compare exit $? in $(($(date +%s) - start)) s" | tee -a "$out/compare.txt"
tail -25 "$out/compare.txt"
