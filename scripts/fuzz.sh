#!/usr/bin/env bash
# Coverage-guided fuzzing (libFuzzer, clang-14) of memento's parsers and C API: builds the
# `fuzz` preset's `fuzzers` target (build-fuzz: ASan + UBSan), then runs each fuzz target of
# tests/fuzz for a fixed number of executions, starting from a copy of its seed corpus
# (tests/fuzz/corpus/<target>/) in a temporary directory: nothing is written to the
# repository. Usage: scripts/fuzz.sh [RUNS]
#   RUNS  executions per target; by default each target's own count (below), sized so that
#         the five runs take about 3 minutes together on a 2-core machine. Each target also
#         stops after FUZZ_MAX_SECONDS (default 90 s), so a slow machine cannot hold CI up.
# A crash (or sanitizer report, timeout, out-of-memory) fails the script and names the input
# that caused it; add that file to tests/fuzz/corpus/<target>/ as crash-<what> so the normal
# suite replays it (ctest fuzz.<target>.corpus).
set -euo pipefail
cd "$(dirname "$0")/.."
max_seconds=${FUZZ_MAX_SECONDS:-90}
[[ $# -eq 0 || ( "$1" =~ ^[0-9]+$ && "$1" -gt 0 ) ]] || {
  echo "scripts/fuzz.sh: RUNS must be a positive number of executions, got '$1'" >&2
  exit 2
}
targets=(bytes budget config replay_log capi)
# Executions per target by default: the parsers run thousands a second, the C API (a
# process-wide instance with stream threads per input) a few hundred.
declare -A default_runs=([bytes]=100000 [budget]=100000 [config]=100000
                         [replay_log]=30000 [capi]=6000)

# clang and its sanitizer/libFuzzer runtimes, on top of what every build needs.
scripts/install-deps.sh fuzz

build_start=$SECONDS
cmake --preset fuzz >/dev/null
cmake --build --preset fuzz
echo "scripts/fuzz.sh: built the fuzzers in $((SECONDS - build_start)) s"

work=$(mktemp -d "${TMPDIR:-/tmp}/memento-fuzz.XXXXXX")
failed=()
printf '%-11s %10s %7s %12s  %s\n' target executions time corpus status
for t in "${targets[@]}"; do
  mkdir -p "$work/$t/corpus" "$work/$t/crashes"
  cp tests/fuzz/corpus/"$t"/* "$work/$t/corpus/"
  start=$SECONDS
  # -close_fd_mask=2: memento's error messages (every refused call says why on stderr) would
  # slow the run down; libFuzzer and the sanitizers still report on their own descriptor.
  status=ok
  runs=${1:-${default_runs[$t]}}
  build-fuzz/tests/fuzz/fuzz_"$t" -runs="$runs" -max_total_time="$max_seconds" -timeout=10 \
    -rss_limit_mb=4096 -close_fd_mask=2 -print_final_stats=1 \
    -artifact_prefix="$work/$t/crashes/" "$work/$t/corpus" >"$work/$t/log" 2>&1 || status=CRASH
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/$t/log" | tail -n 1)
  files=$(find "$work/$t/corpus" -type f | wc -l)
  bytes=$(du -sb "$work/$t/corpus" | cut -f1)
  crash=$(find "$work/$t/crashes" -type f | head -n 1)
  [[ -z "$crash" ]] || status=CRASH
  printf '%-11s %10s %6ss %5s files %s  %s\n' "$t" "${execs:-?}" "$((SECONDS - start))" \
    "$files" "($bytes B)" "$status"
  if [[ "$status" != ok ]]; then
    failed+=("$t")
    tail -n 40 "$work/$t/log" >&2
    # Again on the input alone, with stderr: a broken invariant says which there.
    [[ -z "$crash" ]] || build-fuzz/tests/fuzz/fuzz_"$t" "$crash" 2>&1 | grep -m 3 -E \
      "fuzz invariant broken|ERROR: |runtime error|terminate called" >&2 || true
    echo "scripts/fuzz.sh: fuzz_$t failed on ${crash:-an input (see the log above)}" >&2
    echo "  reproduce: build-fuzz/tests/fuzz/fuzz_$t ${crash:-INPUT}" >&2
    echo "  then add it as a regression: cp ${crash:-INPUT} tests/fuzz/corpus/$t/crash-<what>" >&2
  fi
done
if ((${#failed[@]})); then
  echo "scripts/fuzz.sh: FAILED: ${failed[*]} (logs and inputs kept in $work)" >&2
  exit 1
fi
rm -rf "$work"
echo "scripts/fuzz.sh: no fuzzer found a crash"
