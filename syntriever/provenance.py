"""Which commands produced an artifact.

Every stage records its own command line in what it writes: the synthesis, retrieval and
comparison summaries (``<file>.summary.json``), the model card of a trained model
(``<model folder>/syntriever.json``) and the result file of an evaluation. The records already
name their inputs (``synthetic_file``, ``retrieval_file``, ``preferences_file``, ``model_path``,
``base_model_path``), so :func:`command_chain` can walk from a result back to the LLM steps and
list, upstream first, the commands that reproduce it. An evaluation stores that chain in its
result file, which is committed (the model folders are not), and the results table prints it.
"""

from __future__ import annotations

import json
import shlex
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

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
    return redact(shlex.join(["python", str(script.relative_to(ROOT)), *argv[1:]]))


def _upstream(key: str, value: str) -> dict[str, Any] | None:
    path = Path(value) if Path(value).is_absolute() else ROOT / value
    record_file = path / CARD_NAME if key in _CARD_OF else path.with_suffix(".summary.json")
    if not record_file.is_file():
        return None
    record = json.loads(record_file.read_text(encoding="utf-8"))
    return record if isinstance(record, dict) else None


def command_chain(record: Mapping[str, Any], _depth: int = 0) -> list[str]:
    """The commands behind ``record`` (a summary, a model card or a result), upstream first and
    each once: those of the records it names that can still be read, then its own ``command``."""
    if _depth > 20:
        raise ValueError("provenance records refer to each other in a cycle")
    chain: list[str] = []
    for key in (*_CARD_OF, *_SUMMARY_OF):  # a base model before the data made with it
        value = record.get(key)
        if isinstance(value, str) and value:
            upstream = _upstream(key, value)
            if upstream is not None:
                chain += command_chain(upstream, _depth + 1)
    if record.get("command"):
        chain.append(str(record["command"]))
    return list(dict.fromkeys(chain))
