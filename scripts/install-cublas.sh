#!/usr/bin/env bash
# Completes a CUDA toolkit that has nvcc and cudart but no cuBLAS (as on the development
# machines' image since 2026-12-04) from NVIDIA's cuBLAS wheel on PyPI: its headers and
# libraries go beside the toolkit's, so CMake's FindCUDAToolkit finds CUDA::cublas and the
# cuda backend builds. Idempotent; does nothing without a toolkit or when cuBLAS is there.
# Only compiling and linking need it here: on a GPU machine the driver's own cuBLAS runs.
set -euo pipefail
cuda=${CUDA_HOME:-/usr/local/cuda}
version=13.10.0.20  # cuBLAS for CUDA 13, the toolkit the project builds with
[[ -x $cuda/bin/nvcc ]] || exit 0
[[ -f $cuda/include/cublas_v2.h && -e $cuda/lib64/libcublas.so ]] && exit 0
major=$("$cuda/bin/nvcc" --version | sed -n 's/.*release \([0-9]*\)\..*/\1/p')
if [[ $major != 13 ]]; then
  echo "memento: CUDA $major has no cuBLAS here; the cuda backend is left out" >&2
  exit 0
fi
echo "memento: installing cuBLAS $version into $cuda from PyPI (nvidia-cublas)" >&2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download --quiet --no-deps -d "$tmp" "nvidia-cublas==$version"
python3 -m zipfile -e "$tmp"/nvidia_cublas-*.whl "$tmp/whl"
src=$tmp/whl/nvidia/cu13
cp "$src"/include/cublas*.h "$cuda/include/"
cp "$src"/lib/libcublas.so.13 "$src"/lib/libcublasLt.so.13 "$cuda/lib64/"
ln -sf libcublas.so.13 "$cuda/lib64/libcublas.so"
ln -sf libcublasLt.so.13 "$cuda/lib64/libcublasLt.so"
