#!/usr/bin/env bash
# The test command: lint, then the whole test suite (real SciFact slice and the real embedded
# llama.cpp server included). Run scripts/setup.sh once before.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
.venv/bin/ruff check .
.venv/bin/python -m pytest -q "$@"
