#!/usr/bin/env bash
# Create .venv in the repository root and install iotsynth with its test tools.
# Safe to run again: an existing .venv is reused and only updated.
set -euo pipefail
cd "$(dirname "$0")/.."

python="${PYTHON:-python3}"
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "envs/setup.sh: Python 3.11 or newer is required ($python is $("$python" --version 2>&1))" >&2
    exit 1
fi
[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
# torch first and pinned: an unpinned torch pulled in by a dependency resolves
# to a multi-GB CUDA build on PyPI. A CUDA machine can install its own torch
# build before running this script; a satisfied requirement is kept.
.venv/bin/python -m pip install --quiet "torch==${TORCH_VERSION:-2.13.0}"
.venv/bin/python -m pip install --quiet -e ".[test]"
# SDMetrics checks our fidelity scores in tests/test_fidelity.py. Its releases
# declare pandas < 3 but run under pandas 3, so it is installed without its
# dependency pins; pip check then reports that conflict.
.venv/bin/python -m pip install --quiet --no-deps sdmetrics==0.32.0 copulas==0.14.1 plotly==7.1.0
echo "envs/setup.sh: iotsynth installed in $(pwd)/.venv"
