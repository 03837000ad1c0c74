#!/usr/bin/env bash
# On a machine with an NVIDIA GPU: builds memento for that GPU, runs every test (the cuda
# typed suites no longer skip) and the GPU allocator benchmarks, prints their medians, then
# trains gpt2-124m (bf16) under budgets with every policy beside the sim's prediction.
# Needs the CUDA toolkit, CMake and the Debian -dev packages scripts/install-deps.sh lists;
# with apt reachable it installs them, without it it says which are missing.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v nvidia-smi >/dev/null || { echo "gpu-check: nvidia-smi not found: no NVIDIA GPU here" >&2; exit 2; }
nvidia-smi --query-gpu=name,memory.total,compute_cap --format=csv,noheader
if ! scripts/install-deps.sh; then
  echo "gpu-check: could not install the build dependencies (see above)" >&2
  exit 2
fi
arch=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1 | tr -d .)
generator=(-G Ninja)
command -v ninja >/dev/null || generator=()
cmake -S . -B build-gpu "${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DMEMENTO_CUDA=ON \
  -DCMAKE_CUDA_ARCHITECTURES="${arch:-90}"
cmake --build build-gpu -j "$(nproc)"
ctest --test-dir build-gpu -j "$(nproc)" --output-on-failure --timeout 300
build-gpu/bench/allocator_bench --benchmark_filter='Cuda|BM_CachedAllocFree/' \
  --benchmark_repetitions=5 --benchmark_report_aggregates_only=true 2>/dev/null |
  grep -E 'median|^Benchmark'

# gpt2-124m in bf16 under 100/70/50/35% of its unlimited peak with every policy, on the GPU
# and, beside it, the sim backend's prediction for the same run (its closest profile).
gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)
case "$gpu" in
  *H200*) profile=h200 ;; *H100*) profile=h100-sxm ;; *A100*80*) profile=a100-80gb ;;
  *A100*) profile=a100-40gb ;; *4090*) profile=rtx4090 ;; *L4*) profile=l4 ;; *) profile=h100-sxm ;;
esac
echo
echo "$gpu (sim profile $profile):"
scripts/budget-sweep.sh build-gpu/memento cuda "sim:$profile" gpt2-124m bf16
