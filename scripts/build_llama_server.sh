#!/usr/bin/env bash
# Build llama.cpp's native OpenAI-compatible `llama-server` from the llama.cpp sources vendored in
# the llama-cpp-python source package on PyPI. Built once per machine into a cache folder and
# reused afterwards (the binary is static, ~15 MB). Prints the binary's path on the last line.
# Usage: build_llama_server.sh DEST_DIR VERSION -- both decided by syntriever/llm/local.py, which
# runs this script (scripts/setup.sh goes through it too), so the folder is named in one place.
# Built for this CPU (-march=native) but without AMX on x86-64: where the kernel has not enabled
# AMX tile state (seen in a VM whose CPU reports amx_tile), llama.cpp's AMX kernels fault at their
# first `ldtilecfg`, so a native build dies at start-up (SIGSEGV, "llama threadpool init").
set -euo pipefail
if [ $# -ne 2 ]; then
  echo "usage: $0 DEST_DIR VERSION (run by syntriever.llm.local.server_binary)" >&2
  exit 2
fi
DEST="$1"
VERSION="$2"
BIN="$DEST/llama-server"
if [ -x "$BIN" ] && "$BIN" --version >/dev/null 2>&1; then
  echo "$BIN"
  exit 0
fi
PY="${PYTHON:-python3}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
echo "building llama-server from llama-cpp-python==$VERSION sources (about 5 min on 2 cores)" >&2
"$PY" -m pip download --quiet --no-deps --no-binary :all: "llama-cpp-python==$VERSION" -d "$WORK" >&2
tar -xzf "$WORK"/llama_cpp_python-"$VERSION".tar.gz -C "$WORK"
SRC="$WORK/llama_cpp_python-$VERSION/vendor/llama.cpp"
if [ "$(uname -m)" = x86_64 ]; then
  # GGML_NATIVE would add its own -march=native after these flags and turn AMX back on
  FLAGS="-march=native -mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
  ARCH=(-DGGML_NATIVE=OFF "-DCMAKE_C_FLAGS=$FLAGS" "-DCMAKE_CXX_FLAGS=$FLAGS")
else
  ARCH=(-DGGML_NATIVE=ON)
fi
cmake -S "$SRC" -B "$WORK/build" -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF \
  -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
  -DLLAMA_BUILD_SERVER=ON "${ARCH[@]}" >&2
cmake --build "$WORK/build" --target llama-server -j "$(nproc)" >&2
mkdir -p "$DEST"
cp "$WORK/build/bin/llama-server" "$BIN.tmp"
mv "$BIN.tmp" "$BIN"
"$BIN" --version >&2 || true
echo "$BIN"
