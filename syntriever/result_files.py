"""Result files: one evaluation writes ``results/<dataset>/<model>.json`` (model name made
file-safe; rows of a split other than the headline one go to ``results/<dataset>/<split>/``).
:func:`make_result` builds and :func:`validate_result` checks the schema; :func:`save_result`
and :func:`load_results` write and read them. :mod:`syntriever.tables` renders them."""

from __future__ import annotations

import datetime as _dt
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from syntriever import paths
from syntriever.data import headline_split
from syntriever.jsonl import DataError, read_json, write_json

logger = logging.getLogger(__name__)

HEADLINE = "NDCG@10"


def make_result(
    model: str,
    dataset: str,
    metrics: Mapping[str, float],
    per_query: Mapping[str, Mapping[str, float]],
    *,
    split: str = "test",
    num_queries: int | None = None,
    config: Mapping[str, Any] | None = None,
    model_path: str | None = None,
    timings: Mapping[str, float] | None = None,
    created: str | None = None,
    commands: Sequence[str] = (),
) -> dict[str, Any]:
    """Build (and validate) one result record.

    Schema::

        model        the MODEL argument exactly as typed ("minilm-sft", "intfloat/e5-base-v2")
        dataset      BEIR dataset name ("scifact"); split: "test" (MS MARCO: "dev")
        metrics      {"NDCG@10": 0.66, "Recall@100": ..., "MRR@10": ...}: fractions in [0, 1],
                     BEIR key names, means over all qrels queries (metrics.evaluate_run)
        per_query    {"NDCG@10": {qid: value, ...}, ...}: at least NDCG@10 for the CIs
        num_queries  number of evaluated queries (default: size of per_query["NDCG@10"])
        config       free-form settings of the run (encoder, max length, batch size, ...)
        model_path   where the evaluated weights came from ("" if not applicable)
        timings      {"encode_corpus_s": ..., ...}: wall-clock seconds
        created      ISO 8601 time (default: now, UTC)
        commands     the command lines that produced the model and this evaluation, upstream
                     first (syntriever.provenance.command_chain); [] when not run by a script
    """
    if num_queries is None:
        num_queries = len(per_query.get(HEADLINE, {}))
    record = {
        "model": model,
        "dataset": dataset,
        "split": split,
        "metrics": {k: float(v) for k, v in metrics.items()},
        "per_query": {m: {q: float(v) for q, v in vals.items()} for m, vals in per_query.items()},
        "num_queries": int(num_queries),
        "config": dict(config or {}),
        "model_path": model_path or "",
        "timings": {k: float(v) for k, v in (timings or {}).items()},
        "created": created or _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "commands": list(commands),
    }
    validate_result(record, f"result of {model!r} on {dataset!r}")
    return record


def validate_result(record: Any, where: str) -> None:
    """Raise :class:`DataError` (message starting with ``where``) if ``record`` is malformed."""

    def fail(msg: str) -> None:
        raise DataError(f"{where}: {msg}")

    if not isinstance(record, dict):
        fail("not a JSON object")
    for key, kind in (("model", str), ("dataset", str), ("split", str), ("metrics", dict)):
        if not isinstance(record.get(key), kind):
            fail(f"field {key!r} missing or not a {kind.__name__}")
    if not record["model"]:
        fail("empty model name")
    metrics = record["metrics"]
    if HEADLINE not in metrics:
        fail(f"metrics lack {HEADLINE}")
    for name, value in metrics.items():
        if not _is_fraction(value):
            fail(f"metric {name} = {value!r} is not a number in [0, 1]")
    per_query = record.get("per_query", {})
    if not isinstance(per_query, dict):
        fail("per_query is not an object")
    for name, values in per_query.items():
        if not isinstance(values, dict) or not all(_is_fraction(v) for v in values.values()):
            fail(f"per_query[{name!r}] is not an object of numbers in [0, 1]")
        if name in metrics and values:
            mean = math.fsum(values.values()) / len(values)
            if abs(mean - metrics[name]) > 1e-4:
                fail(f"{name}: mean of per-query values {mean:.6f} != metric {metrics[name]:.6f}")
    commands = record.get("commands", [])
    if not isinstance(commands, list) or not all(isinstance(c, str) for c in commands):
        fail("commands is not a list of strings")
    num = record.get("num_queries")
    if not isinstance(num, int) or isinstance(num, bool) or num < 0:
        fail("num_queries missing or not a non-negative integer")
    if HEADLINE in per_query and len(per_query[HEADLINE]) != num:
        fail(f"num_queries {num} != {len(per_query[HEADLINE])} per-query {HEADLINE} values")


def _is_fraction(value: Any) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and -1e-9 <= value <= 1 + 1e-9
    )


def results_dir(dataset: str, root: Path | None = None, split: str | None = None) -> Path:
    """``<root>/<dataset>`` for the dataset's headline split (test; MS MARCO dev), else
    ``<root>/<dataset>/<split>``, so that rows of other splits (the dev split that chooses the
    options) never enter the headline table. ``root`` defaults to ``paths.results_root()``."""
    base = Path(root) if root is not None else paths.results_root()
    folder = base / paths.check_name(dataset)
    if split is None or split == headline_split(dataset):
        return folder
    return folder / paths.check_name(split, "split")


def result_path(dataset: str, model: str, root: Path | None = None, split: str | None = None) -> Path:
    """Where the result file of ``model`` on ``dataset`` (``split``, default the headline one) lives."""
    return results_dir(dataset, root, split) / f"{paths.file_safe(model)}.json"


def save_result(record: Mapping[str, Any], root: Path | None = None) -> Path:
    """Validate and write ``record`` atomically to its result path; return the path."""
    validate_result(dict(record), f"result of {record.get('model')!r}")
    path = result_path(record["dataset"], record["model"], root, record["split"])
    write_json(path, dict(record))
    logger.info("wrote %s", path)
    return path


def load_results(dataset: str, root: Path | None = None, split: str | None = None) -> list[dict[str, Any]]:
    """All result records in :func:`results_dir` (``*.json``), sorted by file name (see
    :func:`load_result_files`)."""
    return [record for _, record in load_result_files(dataset, root, split)]


def load_result_files(
    dataset: str, root: Path | None = None, split: str | None = None
) -> list[tuple[Path, dict[str, Any]]]:
    """``(path, record)`` of every result file directly in :func:`results_dir` (sub-folders,
    e.g. the headline folder's ``dev/``, are not read), sorted by file name.

    Hidden files and JSON files that do not look like results (no ``model`` and no ``metrics``
    field) are skipped. A file that does not parse, looks like a result but breaks the schema,
    belongs to another dataset or repeats a model raises :class:`DataError` naming the file.
    """
    folder = results_dir(dataset, root, split)
    if not folder.is_dir():
        return []
    records: list[tuple[Path, dict[str, Any]]] = []
    seen: dict[str, Path] = {}
    for path in sorted(folder.glob("*.json")):
        if path.name.startswith("."):
            continue
        record = read_json(path, "mend it, or move it away and run its evaluate.py command again")
        if not isinstance(record, dict) or ("model" not in record and "metrics" not in record):
            logger.debug("skipping %s: not a result file", path)
            continue
        validate_result(record, str(path))
        if record["dataset"] != dataset:
            raise DataError(f"{path}: dataset {record['dataset']!r}, expected {dataset!r}")
        if record["model"] in seen:
            raise DataError(f"{path}: model {record['model']!r} already in {seen[record['model']]}")
        seen[record["model"]] = path
        records.append((path, record))
    return records


def check_comparable(files: Sequence[tuple[Path, Mapping[str, Any]]]) -> None:
    """Raise :class:`DataError` naming the files when the results are not over one split and one
    set of queries: such rows (and their CIs and paired tests) cannot be compared."""
    groups: dict[tuple[str, int], list[str]] = {}
    for path, record in files:
        groups.setdefault((str(record.get("split")), int(record["num_queries"])), []).append(path.name)
    if len(groups) < 2:
        return
    (split, count), _ = max(groups.items(), key=lambda item: len(item[1]))
    odd = "; ".join(f"split {s}, {n} queries: {', '.join(names)}"
                    for (s, n), names in groups.items() if (s, n) != (split, count))
    folder = files[0][0].parent
    raise DataError(
        f"{folder}: rows of different splits or query counts cannot share a table (most files: split "
        f"{split}, {count} queries; but {odd}); re-evaluate those models on the same split "
        f"(`python evaluate.py MODEL {folder.name} --split {split}`) or move their files out of "
        f"{folder}, or pass --allow-mixed to tabulate them anyway"
    )


def encoding_precision(record: Mapping[str, Any]) -> str | None:
    """The precision a dense retriever's result was encoded in ("fp32" for files written before
    the precision was recorded, when encoding was always fp32); None for BM25 and other results
    that encode nothing."""
    config = record.get("config") or {}
    if not str(config.get("retriever", "")).startswith("dense"):
        return None
    return str(config.get("precision") or "fp32")


def precision_note(records: Sequence[Mapping[str, Any]]) -> str | None:
    """A table footnote when the dense rows were encoded with different precisions (their
    differences then include the precision's own effect), naming each precision's rows; else None."""
    groups: dict[str, list[str]] = {}
    for record in records:
        precision = encoding_precision(record)
        if precision is not None:
            groups.setdefault(precision, []).append(record["model"])
    if len(groups) < 2:
        return None
    listing = "; ".join(f"{p}: " + ", ".join(f"`{m}`" for m in sorted(models))
                        for p, models in sorted(groups.items()))
    return (f"Warning: mixed encoding precision ({listing}); differences between rows of different "
            "precisions include the precision's own effect. Compare like with like: "
            "`python evaluate.py MODEL DATASET --precision fp32`.")
