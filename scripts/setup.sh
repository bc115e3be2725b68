#!/usr/bin/env bash
# Set up a fresh machine: a virtual environment with the pinned dependencies (CPU torch first,
# so nothing pulls a CUDA build), the syntriever package installed editable (the scripts import
# it from anywhere), the BEIR data linked from the local mirror when present, and llama.cpp's
# llama-server built once for the embedded LLM. Safe to re-run: it reuses what exists.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet torch==2.13.0
.venv/bin/python -m pip install --quiet -r requirements-dev.txt
.venv/bin/python -m pip install --quiet --no-deps -e .  # dependencies: the pinned ones above
.venv/bin/python -c "from syntriever.llm.local import server_binary; print(server_binary())"
