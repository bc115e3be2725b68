"""Where things live: data, generated LLM outputs, trained models and result files.

Every location is derived from the repository root, so the stage scripts work from any working
directory. Environment variables override the defaults:

- ``SYNTRIEVER_DATA``: the folder holding BEIR datasets (default ``<repo>/datasets``).
- ``SYNTRIEVER_MIRROR``: a local folder with BEIR datasets to link instead of downloading
  (default ``<repo>/../shared/datasets`` when it exists).
- ``SYNTRIEVER_OUTPUT``: trained models (default ``<repo>/output``).
- ``SYNTRIEVER_CACHE``: built binaries and assembled model files (default ``~/.cache/syntriever``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from syntriever.errors import InvalidName

ROOT = Path(__file__).resolve().parent.parent
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def data_root() -> Path:
    """Folder holding one sub-folder per BEIR dataset."""
    return Path(os.environ.get("SYNTRIEVER_DATA", ROOT / "datasets")).resolve()


def mirror_root() -> Path | None:
    """Local mirror of BEIR datasets, if configured or present beside the repository."""
    env = os.environ.get("SYNTRIEVER_MIRROR")
    if env:
        return Path(env).resolve()
    default = ROOT.parent / "shared" / "datasets"
    return default.resolve() if default.is_dir() else None


def generated_root() -> Path:
    """Committed LLM outputs (requests, raw results, parsed JSONL) per dataset."""
    return ROOT / "generated"


def output_root() -> Path:
    """Trained models (kept out of git)."""
    return Path(os.environ.get("SYNTRIEVER_OUTPUT", ROOT / "output")).resolve()


def results_root() -> Path:
    """Committed evaluation result files and tables."""
    return ROOT / "results"


def splits_root() -> Path:
    """Committed dev splits carved from train queries (``splits/<dataset>/dev.tsv``)."""
    return ROOT / "splits"


def cache_root() -> Path:
    """Per-machine cache: built llama-server, assembled GGUF files, benchmark answers."""
    return Path(os.environ.get("SYNTRIEVER_CACHE", Path.home() / ".cache" / "syntriever"))


def check_name(name: str, what: str = "dataset") -> str:
    """Return ``name`` if it is a plain file-system name; refuse anything that could escape a folder."""
    if not _NAME.match(name) or ".." in name:
        raise InvalidName(
            f"invalid {what} name {name!r}: use letters, digits, '-', '_' and '.', "
            "with no path separators or '..'"
        )
    return name


def dataset_dir(name: str) -> Path:
    """Folder of dataset ``name`` inside the data root (the name cannot escape it)."""
    return data_root() / check_name(name)


def generated_dir(dataset: str) -> Path:
    """Folder of committed LLM outputs for ``dataset``."""
    return generated_root() / check_name(dataset)


def portable(path: str | Path) -> str:
    """An absolute path inside the repository as a path relative to it, so that records written
    here read the same in any clone; other paths and names (hub ids) unchanged."""
    candidate = Path(path)
    if candidate.is_absolute() and candidate.is_relative_to(ROOT):
        return str(candidate.relative_to(ROOT))
    return str(path)


def file_safe(name: str) -> str:
    """A model argument as typed (``minilm-sft``, ``intfloat/e5-base-v2``) made safe as a file name."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "__", name.strip("/"))
    return safe.lstrip(".") or "model"


def model_tag(model: str) -> str:
    """A short, file-safe name of an LLM (``qwen1.5b``, ``gpt-4o``; ``/m/x.gguf`` -> ``x``)."""
    return file_safe(model.rsplit("/", 1)[-1].removesuffix(".gguf"))
