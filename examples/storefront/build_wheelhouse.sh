#!/usr/bin/env bash
# Download the wheels of requirements.txt into wheelhouse/ for the image build (containers cannot reach PyPI).
# Usage: examples/storefront/build_wheelhouse.sh   (run on the host, then docker build examples/storefront)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly HERE
PYTHON="${PYTHON:-python3}"

# Wheels for the image's interpreter (CPython 3.11 on glibc x86-64), whatever the host runs.
"$PYTHON" -m pip download --disable-pip-version-check --quiet \
  --only-binary=:all: \
  --platform manylinux2014_x86_64 --platform manylinux_2_28_x86_64 \
  --python-version 3.11 --implementation cp --abi cp311 \
  -d "$HERE/wheelhouse" -r "$HERE/requirements.txt"
ls "$HERE/wheelhouse"
