"""benchmarks/seed_pool.py --by-train-overlap: which evaluated queries share a relevant passage with
the training queries, and the mean over seeds pooled over each group."""

from __future__ import annotations

from pathlib import Path

import pytest

from syntriever.data import write_qrels
from syntriever.jsonl import write_json
from tests.helpers import load_benchmark


def test_sharing_train_passages_counts_relevant_passages_only() -> None:
    bench = load_benchmark("seed_pool")
    trained = {"t1": {"d1": 1, "d2": 0}, "t2": {"d3": 2}}
    evaluated = {"e1": {"d1": 1}, "e2": {"d2": 1}, "e3": {"d4": 1, "d3": 1}, "e4": {"d1": 0, "d5": 1}}
    # e2's passage is judged for t1 but not relevant to it; e4's shared passage is not relevant to e4
    assert bench.sharing_train_passages(evaluated, trained) == {"e1", "e3"}


def test_by_train_overlap_pools_each_group_against_the_training_split_of_the_result(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNTRIEVER_DATA", str(tmp_path))
    folder = tmp_path / "toy"
    write_qrels(folder / "qrels" / "train.tsv", {"t1": {"d1": 1}})
    write_qrels(folder / "qrels" / "test.tsv", {"e1": {"d1": 1}, "e2": {"d2": 1}, "e3": {"d3": 1}})
    base = tmp_path / "base.json"
    write_json(base, {"dataset": "toy", "split": "test"})
    row = load_benchmark("seed_pool").by_train_overlap(base, {"e1": 0.5, "e2": -0.1, "e3": -0.3})
    assert row["rule"].endswith("of train")
    assert (row["sharing"]["queries"], row["sharing"]["delta"]) == (1, 50.0)
    assert (row["not_sharing"]["queries"], row["not_sharing"]["delta"]) == (2, -20.0)
