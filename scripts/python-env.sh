#!/usr/bin/env bash
# Makes .venv with what memento's Python package is tested with: PyTorch 2.13.0 (the CPU
# build, which pip takes from a local file on the project's machines; a plain `torch` would
# pull a multi-GB CUDA build), pytest, and the package itself (editable). Idempotent.
# Usage: scripts/python-env.sh [VENV]   (default .venv at the repository root)
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${1:-.venv}
torch_version=2.13.0
if [[ ! -x "$venv/bin/python" ]]; then
  if ! python3 -m venv "$venv" 2>/dev/null; then
    echo "memento: python3 -m venv failed; installing python3-venv" >&2
    sudo_cmd=()
    [[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)
    "${sudo_cmd[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq python3-venv python3-pip
    rm -rf "$venv"
    python3 -m venv "$venv"
  fi
fi
py="$venv/bin/python"
have() { "$py" -c "$1" >/dev/null 2>&1; }
if ! have "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '$torch_version')"; then
  echo "memento: installing torch==$torch_version (CPU) into $venv" >&2
  "$py" -m pip install -q "torch==$torch_version"
fi
have "import pytest" || "$py" -m pip install -q pytest
have "import memento.torch" || "$py" -m pip install -q --no-deps --no-build-isolation -e python
