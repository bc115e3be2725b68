"""Stage 2, alignment: training examples from the judge's preference triples.

The triples (query, winner, loser) come from :func:`syntriever.judge.run_comparisons`, which
judges the stage-1 model's top passages of each training query
(:func:`syntriever.retrieval.retrieve_training_queries`). :func:`build_preference_examples` turns
them into (query, preferred, less_preferred) training columns for
:class:`~syntriever.losses.PartialPlackettLuceLoss` (or the Bradley-Terry ablation).

Batching: :func:`syntriever.training.train` uses sentence-transformers'
``BatchSamplers.NO_DUPLICATES``. Its ``NoDuplicatesBatchSampler`` (sentence-transformers 6.2,
``base/sampler.py``) adds a sample to the batch being built only if *none* of its text values
(any column) is already in that batch, and otherwise leaves it for a later batch. The ~C(k, 2)
triples of one query share the query text, so they always land in different batches, as the
partial Plackett-Luce loss needs (another triple of the same query would make its passages false
in-batch negatives). :class:`~syntriever.losses.PartialPlackettLuceLoss` also refuses a batch
with repeated query tokens, as a second guard.
"""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path
from typing import Any

from datasets import Dataset
from sentence_transformers import SentenceTransformer

from syntriever.encoders import add_prefix
from syntriever.jsonl import DataError, read_jsonl_numbered

logger = logging.getLogger(__name__)

PREFERENCE_KEYS = ("query_id", "query", "winner_id", "loser_id", "winner", "loser")


def load_preferences(path: Path) -> list[dict[str, Any]]:
    """Read ``<dataset>_preferences.jsonl``, checking every line."""
    triples = []
    for line, rec in read_jsonl_numbered(path):
        for key in PREFERENCE_KEYS:
            if not isinstance(rec.get(key), str):
                raise DataError(f"{path}:{line}: preference record needs a string {key!r}")
        triples.append(rec)
    if not triples:
        raise DataError(f"{path}: no preference triples")
    return triples


def build_preference_examples(triples: list[dict[str, Any]], model: SentenceTransformer) -> Dataset:
    """Columns (query, preferred, less_preferred), prefixed for ``model``.

    The triples of one query repeat its text; ``BatchSamplers.NO_DUPLICATES`` (see the module
    docstring) keeps them in separate batches."""
    if not triples:
        raise ValueError("no preference triples")
    rows = {
        "query": add_prefix(model, [t["query"] for t in triples], "query"),
        "preferred": add_prefix(model, [t["winner"] for t in triples], "document"),
        "less_preferred": add_prefix(model, [t["loser"] for t in triples], "document"),
    }
    per_query = Counter(t["query_id"] for t in triples)
    logger.info("stage-2 examples: %d triples of %d queries (at most %d per query)", len(triples),
                len(per_query), max(per_query.values()))
    return Dataset.from_dict(rows)
