#!/usr/bin/env bash
# Builds memento and runs every test. Usage: scripts/test.sh [default|asan|tsan]
#   default  RelWithDebInfo with the cuda backend when the CUDA toolkit is present, and the
#            Python package's tests (pytest, PyTorch 2.13 CPU in .venv)
#   asan     AddressSanitizer + UndefinedBehaviorSanitizer (host and sim backends)
#   tsan     ThreadSanitizer (host and sim backends)
#   release  Release build of the library, CLI and benchmarks, warnings as errors (no tests)
set -euo pipefail
cd "$(dirname "$0")/.."
preset=${1:-default}
case "$preset" in default | asan | tsan | release) ;; *)
  echo "scripts/test.sh: unknown preset '$preset'; accepted: default, asan, tsan, release" >&2
  exit 2 ;;
esac
scripts/install-deps.sh
[[ "$preset" != default ]] || scripts/python-env.sh  # torch and pytest for python/
cmake --preset "$preset"
cmake --build --preset "$preset"
[[ "$preset" == release ]] || ctest --preset "$preset"
