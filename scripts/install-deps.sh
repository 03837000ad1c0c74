#!/usr/bin/env bash
# Installs the Debian packages memento builds with, only those missing (idempotent).
# Usage: scripts/install-deps.sh [fuzz]   (fuzz: also clang-14 and its libFuzzer and sanitizer
# runtimes, for scripts/fuzz.sh)
set -euo pipefail
packages=(cmake ninja-build g++ pkg-config libboost-dev libhwloc-dev libfmt-dev libcli11-dev
          libgtest-dev libgmock-dev libbenchmark-dev
          libopenblas-dev nlohmann-json3-dev)
case "${1:-}" in
  "") ;;
  fuzz) packages+=(clang-14 libclang-rt-14-dev) ;;
  *) echo "scripts/install-deps.sh: unknown argument '$1'; accepted: fuzz (or none)" >&2; exit 2 ;;
esac
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "memento: installing ${missing[*]}" >&2
  sudo_cmd=()
  [[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# The cuda backend also needs cuBLAS, which a bare CUDA toolkit may lack.
"$(dirname "$0")/install-cublas.sh"
