"""Evaluate one model on a BEIR split and write its result file.

``bm25`` is a model name too (the lexical baseline); any other name is an encoder (preset,
trained model ``output/<name>-<dataset>``, local folder or hub id) searched exactly over the
whole corpus (in memory, or sharded and memory-mapped, or through FAISS for large corpora).
"""

from __future__ import annotations

import datetime as _dt
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from syntriever.data import load_dataset
from syntriever.encoders import open_encoder
from syntriever.errors import UserError
from syntriever.jsonl import read_json
from syntriever.metrics import evaluate_run
from syntriever.names import model_dir
from syntriever.paths import portable
from syntriever.provenance import CARD_NAME, with_commands
from syntriever.result_files import make_result, result_path, save_result
from syntriever.retrieval import bm25_search, dense_search, model_fingerprint

logger = logging.getLogger(__name__)

REPORTED = ("NDCG@1", "NDCG@3", "NDCG@5", "NDCG@10", "NDCG@100", "Recall@10", "Recall@100", "MRR@10")


def evaluate_model(
    model_name: str,
    dataset: str | Path,
    split: str = "test",
    *,
    top_k: int = 100,
    batch_size: int = 32,
    max_seq_length: int | None = None,
    use_cache: bool = True,
    results_root: Path | None = None,
    trained_on: str | None = None,
    index: str = "exact",
    devices: Sequence[str] | None = None,
    shard_size: int | None = None,
    precision: str = "auto",
) -> tuple[dict[str, Any], Path]:
    """Retrieve for every query of ``split``, score with BEIR's metrics, save the result file.

    ``dataset`` is a name in the data folder or a dataset folder path. ``trained_on`` resolves
    trained model names on another dataset's models (zero-shot transfer); the result file is
    then named ``<model>@<trained_on>``. ``index``, ``devices``, ``shard_size`` and ``precision``
    choose the search backend, the encoding processes, the corpus shards and the encoding
    precision (see ``dense_search``); the result's config records the precision used."""
    if top_k < 1:
        raise UserError(f"--top-k must be at least 1, got {top_k} (nothing was evaluated or written)")
    start = time.perf_counter()
    ds = load_dataset(dataset, split)
    config: dict[str, Any] = {"split": split, "top_k": top_k}
    if model_name == "bm25":
        run, stats = bm25_search(ds.corpus, ds.queries, top_k)
        model_path = "bm25s (English stop words, Snowball stemmer)"
        config["retriever"] = "bm25s"
    else:
        source = trained_on or ds.name
        model, model_path = open_encoder(model_name, source, max_seq_length=max_seq_length)
        run, stats = dense_search(model, ds.corpus, ds.queries, top_k, batch_size, use_cache,
                                  index=index, devices=devices, shard_size=shard_size, precision=precision)
        config.update(
            retriever=f"dense {index} cosine", index=index, devices=list(devices) if devices else None,
            shard_size=stats.shard_size, max_seq_length=model.max_seq_length, batch_size=batch_size,
            prompts=model.prompts, precision=stats.precision, corpus_embeddings_cached=stats.corpus_cache_hit,
            model_fingerprint=model_fingerprint(model),
        )
        if stats.passages_per_s:
            config["passages_per_s"] = stats.passages_per_s
        config["queries_per_s"] = stats.queries_per_s
        if (phases := training_phases(model_path)) is not None:
            config["training"] = phases
    aggregate, per_query = evaluate_run(ds.qrels, run)
    metrics = {name: aggregate[name] for name in REPORTED}
    timings = {**stats.timings, "total_s": round(time.perf_counter() - start, 2)}
    if trained_on:
        config["trained_on"] = trained_on
    name = f"{model_name}@{trained_on}" if trained_on else model_name
    record = make_result(
        name, ds.name, metrics, {"NDCG@10": per_query["NDCG@10"]}, split=split,
        config=config, model_path=portable(model_path), timings=timings,
        commands=with_commands({"model_path": portable(model_path)})["commands"],
    )
    path = save_result(record, results_root)
    return record, path


def training_phases(model_path: str | Path) -> list[dict[str, Any]] | None:
    """What the trained model's card records of its training, phase by phase (examples, steps,
    seconds, bf16), so that a result file keeps it where the model is not committed; None for a
    model without a card (a preset, a hub id)."""
    card_file = Path(model_path) / CARD_NAME
    if not card_file.is_file():
        return None
    card = read_json(card_file, "train the model again, or evaluate another")
    return [{"phase": phase.get("phase", "training"), "examples": phase.get("examples"),
             "steps": phase.get("steps"), "train_seconds": phase.get("train_seconds"),
             "bf16": (phase.get("settings") or {}).get("bf16")} for phase in [card, *card.get("then", [])]]


def current_result(name: str, dataset: str, split: str) -> dict[str, Any] | None:
    """The saved result of the trained model ``name`` on ``split`` if it evaluated the weights now
    in the model's folder, else None (evaluate again). A result that records another model
    fingerprint, or (results older than the fingerprint) was created before the model's card was
    written, is of another training run of the same name, e.g. a committed result beside a model
    trained again on this machine. Its ``created`` stamp is compared, not the file's time, which a
    git checkout renews. Without a card (a preset, bm25) a saved result is current."""
    path = result_path(dataset, name, split=split)
    if not path.is_file():
        return None
    record = read_json(path, f"evaluate again: `python evaluate.py {name} {dataset} --split {split}`")
    card = None if "/" in name else model_dir(name, dataset) / CARD_NAME  # a hub id has no card
    if card is None or not card.is_file():
        return record
    recorded = (record.get("config") or {}).get("model_fingerprint")
    if recorded is not None:
        model, _ = open_encoder(name, dataset)
        return record if recorded == model_fingerprint(model) else None
    try:
        created = _dt.datetime.fromisoformat(str(record.get("created")))
    except ValueError:
        return None  # no usable stamp: evaluate again
    if created.tzinfo is None:
        created = created.replace(tzinfo=_dt.timezone.utc)
    trained = _dt.datetime.fromtimestamp(card.stat().st_mtime, _dt.timezone.utc)
    return record if created >= trained else None
