"""benchmarks/seed_pool.py --by-train-overlap: which evaluated queries share a relevant passage with
the training queries, and the mean over seeds pooled over each group."""

from __future__ import annotations

import re
from pathlib import Path
from types import ModuleType

import pytest

from syntriever.data import write_qrels
from syntriever.errors import UserError
from syntriever.jsonl import DataError, write_jsonl
from tests.helpers import load_benchmark


def test_sharing_train_passages_counts_relevant_passages_only() -> None:
    bench = load_benchmark("seed_pool")
    trained = {"t1": {"d1": 1, "d2": 0}, "t2": {"d3": 2}}
    evaluated = {"e1": {"d1": 1}, "e2": {"d2": 1}, "e3": {"d4": 1, "d3": 1}, "e4": {"d1": 0, "d5": 1}}
    # e2's passage is judged for t1 but not relevant to it; e4's shared passage is not relevant to e4
    assert bench.sharing_train_passages(evaluated, trained) == {"e1", "e3"}


def _records(split: str, models: list[tuple[str, str]], scores: dict[str, float] | None = None,
             ) -> list[tuple[dict[str, object], ...]]:
    """Result records (only the fields the grouping reads) for (option model, base model) pairs;
    the option scores ``scores`` on every query, the base 0."""
    scores = scores or dict.fromkeys(("e1", "e2", "e3"), 0.0)
    return [tuple({"dataset": "toy", "split": split, "model": model,
                   "per_query": {"NDCG@10": scores if model == pair[0] else dict.fromkeys(scores, 0.0)}}
                  for model in pair) for pair in models]


def _overlap(bench: ModuleType, records: list[tuple[dict[str, object], ...]], mean: dict[str, float],
             passage_queries: Path | None = None) -> dict[str, object]:
    """``by_train_overlap`` with the seed means of ``records``, as main() passes them."""
    values = [(a["per_query"]["NDCG@10"], b["per_query"]["NDCG@10"]) for a, b in records]
    return bench.by_train_overlap(records, mean, bench.seed_means(values), passage_queries)


def test_seed_means_averages_each_side_over_the_seeds() -> None:
    bench = load_benchmark("seed_pool")
    option, base = bench.seed_means([({"q": 0.2}, {"q": 0.1}), ({"q": 0.4}, {"q": 0.3})])
    assert (round(option["q"], 6), round(base["q"], 6)) == (0.3, 0.2)


def test_by_train_overlap_pools_each_group_against_the_training_split_of_the_models(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNTRIEVER_DATA", str(tmp_path))
    bench = load_benchmark("seed_pool")
    folder = tmp_path / "toy"
    write_qrels(folder / "qrels" / "train.tsv", {"t1": {"d1": 1}, "e2": {"d2": 1}})
    write_qrels(folder / "qrels" / "test.tsv", {"e1": {"d1": 1}, "e2": {"d2": 1}, "e3": {"d3": 1}})
    write_qrels(folder / "qrels" / "dev.tsv", {"e1": {"d1": 1}, "e2": {"d2": 1}, "e3": {"d3": 1}})
    mean = {"e1": 0.5, "e2": -0.1, "e3": -0.3}
    # test results of models trained on train: e1 and e2 share a passage with train's queries
    row = _overlap(bench, _records("test", [("m-final", "m")]), mean)
    assert row["rule"].endswith("of train")
    assert (row["sharing"]["queries"], row["sharing"]["delta"]) == (2, 20.0)
    assert (row["not_sharing"]["queries"], row["not_sharing"]["delta"]) == (1, -30.0)
    # dev results of -nodev models: train-nodev leaves out the dev queries, so e2 does not share
    # its passage with itself
    row = _overlap(bench, _records("dev", [("m-final-nodev", "m-nodev")]), mean)
    assert row["rule"].endswith("of train-nodev")
    assert (row["sharing"]["queries"], row["sharing"]["delta"]) == (1, 50.0)
    assert row["not_sharing"]["queries"] == 2
    with pytest.raises(UserError, match="one dataset, split and training split"):
        _overlap(bench, _records("dev", [("m-final-nodev", "m"), ("m-final", "m")]), mean)
    with pytest.raises(UserError, match="no qrels for 1 queries"):
        _overlap(bench, _records("test", [("m-final", "m")]), {**mean, "e9": 0.0})


def test_by_passage_queries_adds_each_group_split_by_the_passages_the_file_covers(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNTRIEVER_DATA", str(tmp_path))
    bench = load_benchmark("seed_pool")
    folder = tmp_path / "toy"
    qrels = {"e1": {"d1": 1}, "e2": {"d2": 1}, "e3": {"d3": 1}, "e4": {"d4": 0, "d5": 1}}
    write_qrels(folder / "qrels" / "train.tsv", {"t1": {"d1": 1}})
    write_qrels(folder / "qrels" / "test.tsv", qrels)
    write_jsonl(folder / "corpus.jsonl", [{"_id": f"d{i}", "title": "", "text": f"passage {i}"}
                                           for i in range(1, 6)])
    write_jsonl(folder / "queries.jsonl", [{"_id": q, "text": q} for q in ("t1", *qrels)])
    pq = tmp_path / "toy_passage_queries.n3.jsonl"
    write_jsonl(pq, [{"doc_id": d, "query": "q"} for d in ("d1", "d2", "d4")])
    mean = {"e1": 0.5, "e2": 0.2, "e3": -0.3, "e4": -0.1}
    row = _overlap(bench, _records("test", [("m-final", "m")], mean), mean, pq)
    assert row["covered_rule"].endswith("toy_passage_queries.n3.jsonl")
    assert (row["sharing"]["queries"], row["not_sharing"]["queries"]) == (1, 3)  # the two-way pools stay
    assert (row["not_sharing"]["option"], row["not_sharing"]["base"]) == (-6.67, 0.0)
    # e4's covered passage d4 is not relevant to it, so e4 is not covered
    assert (row["sharing_covered"]["queries"], row["sharing_covered"]["delta"]) == (1, 50.0)
    assert row["sharing_covered"]["ci95"] is None and row["sharing_covered"]["p_value"] is None  # 1 query
    assert row["not_sharing_not_covered"]["ci95"] is not None
    assert "sharing_not_covered" not in row  # an empty group is left out
    assert (row["not_sharing_covered"]["queries"], row["not_sharing_covered"]["delta"]) == (1, 20.0)
    assert (row["not_sharing_not_covered"]["queries"], row["not_sharing_not_covered"]["delta"]) == (2, -20.0)
    write_jsonl(pq, [{"doc_id": "d9", "query": "q"}])
    with pytest.raises(DataError, match="not in the toy corpus"):
        _overlap(bench, _records("test", [("m-final", "m")], mean), mean, pq)


def test_summary_prints_no_ci_for_a_one_query_pool() -> None:
    bench = load_benchmark("seed_pool")
    one = bench.pooled({"q": 0.05})
    assert bench.summary(one) == "+5.00 [no CI] p=None"
    many = bench.pooled({f"q{i}": 0.01 * (i % 3) for i in range(30)})
    assert re.fullmatch(r"[+-]\d+\.\d\d \[[+-]\d+\.\d\d, [+-]\d+\.\d\d\] p=[\d.]+", bench.summary(many))
