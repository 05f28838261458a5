#!/usr/bin/env bash
# Installs the Debian packages caopd-harness needs (when missing) and builds it.
#   ./setup.sh              Release build in build/
#   ./setup.sh --sanitize   ASan+UBSan build of everything, tests included, in build-asan/
set -euo pipefail
cd "$(dirname "$0")"

# python3-h5py only runs the docs' h5py examples in the tests (test_docs_python); nothing builds with it.
packages=(build-essential cmake libtorch-dev libgloo-dev libopenblas0-pthread
          libhdf5-dev hdf5-tools libcjson-dev libcairo2-dev fonts-dejavu-core python3-h5py)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}" >&2
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -q
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

if [ "${1:-}" = "--sanitize" ]; then
    dir=build-asan
    flags=(-DCMAKE_BUILD_TYPE=Debug -DCAOPD_SANITIZE=ON)
else
    dir=build
    flags=(-DCMAKE_BUILD_TYPE=Release)
fi
cmake -S . -B "$dir" "${flags[@]}" >/dev/null
cmake --build "$dir" -j "$(nproc)"
echo "setup: built $dir/" >&2
