#!/usr/bin/env bash
# memento for PyTorch on a GPU machine (PyTorch installed, no package registry), from a build
# carried there (../shared/tools/gpu-pack.sh, then `bash .gpu-carry/gpu-run.sh scripts/torch-gpu.sh`):
#   1. python/tests/test_cuda.py: the stream-ordering race test (torch.cuda._sleep);
#   2. python -m memento.torch.compare on the example GPT-2 124M, batch 8, seq 1024, bf16:
#      none, memento without a budget, checkpoint-every-block, save_on_cpu, memento at
#      checkpointing's peak and at 70% and 50% of the unlimited peak.
# Results go under $OUT (default out/torch-gpu).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-out/torch-gpu}
mkdir -p "$out"
export MEMENTO_LIBRARY=${MEMENTO_LIBRARY:-${MEMENTO_BUILD:-build-gpu}/libmemento.so}
export PYTHONPATH=$PWD/python:$PWD/python/tests${PYTHONPATH:+:$PYTHONPATH}
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())" | tee "$out/device.txt"
date -u +%F | tee -a "$out/device.txt"
# pytest where it is installed; otherwise the test functions called directly.
if python3 -c "import pytest" 2>/dev/null; then
  python3 -m pytest -q -p no:cacheprovider python/tests/test_cuda.py 2>&1 | tee "$out/test_cuda.txt"
else
  python3 - <<'PY' 2>&1 | tee "$out/test_cuda.txt"
import test_cuda
for name in dir(test_cuda):
    if name.startswith("test_"):
        getattr(test_cuda, name)()
        print("passed", name)
PY
fi
python3 -m memento.torch.compare --model examples/torch/gpt2.py:make --arg preset=124m \
  --arg batch=8 --arg seq=1024 --arg bf16=1 --budget 70%,50% --steps 6 --out "$out/compare" \
  2>&1 | tee "$out/compare.txt"
