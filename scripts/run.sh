#!/usr/bin/env bash
# Builds memento and runs the main job with its defaults (arguments are passed through).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cmake --preset default >/dev/null
cmake --build --preset default --target memento_cli
exec build/memento "$@"
