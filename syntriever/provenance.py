"""Which commands produced an artifact.

Every stage writes a record: the synthesis, retrieval and comparison summaries
(``<file>.summary.json``), the card of a trained model (``<model folder>/syntriever.json``) and
the result file of an evaluation. A record names its inputs (``synthetic_file``,
``retrieval_file``, ``preferences_file``, ``model_path``, ``base_model_path``; paths inside the
repository are stored relative to it) and, through :func:`with_commands`, the ``commands`` that
produced it: its inputs' commands, upstream first, then its own command line. The chain is fixed
when the record is written, so a later run that overwrites an upstream summary does not change
what a trained model or a result says about itself. Result files are committed (model folders
are not), and the results table prints their chains.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from syntriever.errors import UserError
from syntriever.jsonl import read_json
from syntriever.llm.secrets import redact
from syntriever.paths import ROOT

CARD_NAME = "syntriever.json"  # the training record in a trained model's folder
_SUMMARY_OF = ("synthetic_file", "retrieval_file", "preferences_file")  # -> <file>.summary.json
_CARD_OF = ("base_model_path", "model_path")  # -> <folder>/syntriever.json


def command_line(argv: Sequence[str] | None = None) -> str | None:
    """``python <script> <args>`` for the running stage script (its path relative to the
    repository), shell-quoted, with API keys redacted; None when the process is not one of the
    repository's scripts (tests, notebooks, other programs importing the library)."""
    argv = list(sys.argv if argv is None else argv)
    if not argv:
        return None
    script = Path(argv[0]).resolve()
    if script.suffix != ".py" or not script.is_relative_to(ROOT):
        return None
    if any(part.startswith(".") for part in script.relative_to(ROOT).parts):  # e.g. .venv/.../pytest
        return None
    return redact(shlex.join(["python", str(script.relative_to(ROOT)), *argv[1:]]))


def with_commands(record: Mapping[str, Any]) -> dict[str, Any]:
    """``record`` (about to be written) with its ``commands``: the chains of the inputs it names,
    then this process's command line."""
    return {**record, "commands": command_chain({**record, "command": command_line()})}


def _upstream(key: str, value: str) -> dict[str, Any] | None:
    path = Path(value) if Path(value).is_absolute() else ROOT / value
    record_file = path / CARD_NAME if key in _CARD_OF else path.with_suffix(".summary.json")
    if not record_file.is_file():
        return None
    record = read_json(record_file, "fix it (a merge conflict?) or make it again with its command")
    return record if isinstance(record, dict) else None


def command_chain(record: Mapping[str, Any], _depth: int = 0) -> list[str]:
    """The commands behind ``record``, upstream first and each once: for every input record that
    can still be read, its stored ``commands`` (or, for a record without them, the chain walked
    from it), then ``record``'s own ``command``."""
    if _depth > 20:
        raise ValueError("provenance records refer to each other in a cycle")
    chain: list[str] = []
    for key in (*_CARD_OF, *_SUMMARY_OF):  # a base model before the data made with it
        value = record.get(key)
        if isinstance(value, str) and value:
            upstream = _upstream(key, value)
            if upstream is None:
                continue
            stored = upstream.get("commands")
            chain += stored if isinstance(stored, list) else command_chain(upstream, _depth + 1)
    if record.get("command"):
        chain.append(str(record["command"]))
    return list(dict.fromkeys(chain))


def check_same_run(path: Path, earlier: Mapping[str, Any], wanted: Mapping[str, Any]) -> None:
    """Refuse to add to the report at ``path`` (read as ``earlier``) rows of a run made with other
    settings than ``wanted`` (key -> value): one line naming what it holds."""
    if any(earlier.get(key) != value for key, value in wanted.items()):
        held = ", ".join(f"{key}={earlier.get(key)}" for key in wanted)
        raise UserError(f"{path}: holds a run with other flags ({held}); move it away to start a new "
                        "comparison")
