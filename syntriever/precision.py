"""Encoding precision: bfloat16 autocast where the CPU computes bfloat16 natively, else float32.

On a CPU with ``avx512_bf16`` or ``amx_bf16``, ``torch.autocast("cpu", dtype=torch.bfloat16)``
encodes faster than float32 with nearly the same embeddings (measured in
``benchmarks/results/precision.json``). Without those instructions bfloat16 is emulated and
slower, so ``auto`` (the default) detects them (:func:`native_bf16`) instead of assuming them.
Embeddings are always returned as float32.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

logger = logging.getLogger(__name__)

PRECISIONS = ("fp32", "bf16", "auto")
BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # x86 flags of native bfloat16 arithmetic
CPUINFO = Path("/proc/cpuinfo")


def cpu_info(text: str | None = None) -> tuple[str | None, set[str]]:
    """The CPU's model name and feature flags from ``/proc/cpuinfo`` (or ``text``, its contents);
    (None, empty set) where there is no such file (macOS, Windows)."""
    if text is None:
        try:
            text = CPUINFO.read_text(errors="replace")
        except OSError:
            return None, set()
    model = re.search(r"^model name\s*:\s*(.+)$", text, re.MULTILINE)
    flags = re.search(r"^flags\s*:\s*(.*)$", text, re.MULTILINE)
    return (model.group(1).strip() if model else None), set(flags.group(1).split() if flags else ())


def native_bf16(cpuinfo: str | None = None) -> bool:
    """Whether this CPU has native bfloat16 arithmetic (``avx512_bf16`` or ``amx_bf16``).

    Linux: the flags of ``/proc/cpuinfo`` (``cpuinfo``: its text, for tests). Elsewhere: torch's
    own CPU check (``torch.cpu._is_avx512_bf16_supported`` / ``_is_amx_tile_supported``) when
    this torch has it, else False (float32)."""
    text = cpuinfo
    if text is None and CPUINFO.is_file():
        text = CPUINFO.read_text(errors="replace")
    if text is not None:
        return bool(cpu_info(text)[1] & set(BF16_FLAGS))
    import torch

    names = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    checks = [getattr(torch.cpu, name, None) for name in names]
    try:
        return any(check() for check in checks if check is not None)
    except RuntimeError:  # a torch build without the cpuinfo backend
        return False


def resolve_precision(requested: str, device_type: str = "cpu", *, pooled: bool = False) -> str:
    """The precision encoding will actually use: "fp32" or "bf16".

    ``auto``: bf16 on a CPU with native bfloat16, fp32 otherwise (GPUs included). ``pooled``:
    a multi-process pool, whose workers do not inherit autocast, always encodes in fp32."""
    if requested not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, not {requested!r}")
    if pooled:
        if requested == "bf16":
            logger.warning("multi-process encoding (--devices) runs in fp32: its workers do not use autocast")
        return "fp32"
    if requested == "auto":
        return "bf16" if device_type == "cpu" and native_bf16() else "fp32"
    if requested == "bf16" and device_type == "cpu" and not native_bf16():
        logger.warning("this CPU has no native bfloat16 (%s): bf16 is emulated and slower than fp32",
                       " or ".join(BF16_FLAGS))
    return requested


@contextmanager
def autocast(precision: str, device_type: str = "cpu") -> Iterator[None]:
    """``torch.autocast`` to bfloat16 for ``precision`` "bf16"; nothing for "fp32"."""
    if precision not in ("fp32", "bf16"):
        raise ValueError(f"resolve the precision first (fp32 or bf16), not {precision!r}")
    if precision == "fp32":
        yield
        return
    import torch

    with torch.autocast(device_type, dtype=torch.bfloat16):
        yield
