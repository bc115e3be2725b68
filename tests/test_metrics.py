"""Fast tests of syntriever.metrics and syntriever.tables on hand-built qrels and runs."""

from __future__ import annotations

import copy
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import pytrec_eval

from syntriever import metrics, paths, result_files, tables
from syntriever.jsonl import DataError
from syntriever.metrics import bootstrap_ci, evaluate_run, paired_bootstrap

K = (1, 3, 5, 10, 100)

QRELS = {
    # graded relevance, one judged non-relevant doc
    "q1": {"d1": 2, "d2": 1, "d3": 0, "d4": 1},
    # relevant doc behind a tie of two unjudged docs
    "q2": {"e1": 1},
    # tie between the relevant doc and an unjudged one; "b" > "a" so "b" ranks first
    "q3": {"b": 1},
    # absent from the run
    "q4": {"f1": 1},
    # relevant doc tied at ranks 10/11 with a doc whose id sorts higher: it falls to rank 11
    "q5": {"a10": 1},
}
RUN = {
    # dX is retrieved but not judged; d2/d3 tie at 0.5 and d3 > d2 so d3 ranks first
    "q1": {"d1": 0.9, "d2": 0.5, "d3": 0.5, "dX": 0.7, "d4": 0.1},
    "q2": {"e2": 0.8, "e3": 0.8, "e1": 0.3},
    "q3": {"a": 0.5, "b": 0.5},
    "q5": {**{f"n{i:02d}": 1.0 - i / 100 for i in range(9)}, "a10": 0.05, "z10": 0.05},
    # not in qrels: ignored
    "qX": {"d1": 1.0},
}


def dcg(gains: list[float]) -> float:
    """DCG with the graded relevance as gain and a log2(rank + 1) discount (rank from 1)."""
    return sum(g / math.log2(rank + 1) for rank, g in enumerate(gains, 1))


def test_hand_computed_values() -> None:
    agg, pq = evaluate_run(QRELS, RUN, K)
    # q1 ranking: d1 (2), dX (0), d3 (0), d2 (1), d4 (1); ideal gains 2, 1, 1.
    ideal = [2, 1, 1]
    for k, gains in ((1, [2]), (3, [2, 0, 0]), (5, [2, 0, 0, 1, 1]), (10, [2, 0, 0, 1, 1])):
        expected = dcg(gains) / dcg(ideal[:k])
        assert pq[f"NDCG@{k}"]["q1"] == pytest.approx(expected, abs=1e-9)
    assert pq["Recall@3"]["q1"] == pytest.approx(1 / 3, abs=1e-9)
    assert pq["Recall@5"]["q1"] == pytest.approx(1.0, abs=1e-9)
    assert pq["MRR@10"]["q1"] == 1.0
    # q2: e1 at rank 3
    assert pq["NDCG@10"]["q2"] == pytest.approx(1 / math.log2(4), abs=1e-9)
    assert pq["MRR@10"]["q2"] == pytest.approx(1 / 3, abs=1e-9)
    assert pq["NDCG@1"]["q2"] == 0.0
    # q3: tie broken by doc id descending, so b (relevant) is first although inserted second
    assert pq["NDCG@1"]["q3"] == 1.0 and pq["MRR@10"]["q3"] == 1.0
    # q5: a10 lands at rank 11 behind z10, so MRR@10 is 0 while NDCG@100 sees it at rank 11
    assert pq["MRR@10"]["q5"] == 0.0
    assert pq["NDCG@10"]["q5"] == 0.0
    assert pq["NDCG@100"]["q5"] == pytest.approx(1 / math.log2(12), abs=1e-9)
    # q4 is missing from the run: zero everywhere, and it counts in the mean (5 queries)
    assert all(pq[name]["q4"] == 0.0 for name in pq)
    expected_mrr = (1 + 1 / 3 + 1 + 0 + 0) / 5
    assert agg["MRR@10"] == pytest.approx(expected_mrr, abs=1e-12)
    assert "qX" not in pq["NDCG@10"]


def test_agrees_with_pytrec_eval_directly() -> None:
    agg, pq = evaluate_run(QRELS, RUN, K)
    assert set(agg) == set(metrics.metric_names(K))
    measures = {"ndcg_cut.1,3,5,10,100", "recall.1,3,5,10,100", "map_cut.1,3,5,10,100"}
    direct = pytrec_eval.RelevanceEvaluator(QRELS, measures).evaluate(RUN)
    for qid in QRELS:
        for k in K:
            for ours, theirs in (("NDCG", "ndcg_cut"), ("Recall", "recall"), ("MAP", "map_cut")):
                want = direct[qid][f"{theirs}_{k}"] if qid in direct else 0.0
                assert pq[f"{ours}@{k}"][qid] == pytest.approx(want, abs=1e-9)
    for name, values in pq.items():
        assert agg[name] == pytest.approx(sum(values.values()) / len(QRELS), abs=1e-12)


def test_tie_order_does_not_depend_on_insertion_order() -> None:
    qrels = {"q": {"9": 1}}
    # byte-wise descending: "9" > "10", so "9" ranks first whatever the dict order
    for run in ({"q": {"10": 1.0, "9": 1.0}}, {"q": {"9": 1.0, "10": 1.0}}):
        _, pq = evaluate_run(qrels, run)
        assert pq["MRR@10"]["q"] == 1.0
    assert metrics.rank_order({"a": 1.0, "c": 1.0, "b": 2.0}) == ["b", "c", "a"]


def test_missing_query_counts_as_zero_unlike_beir() -> None:
    from beir.retrieval.evaluation import EvaluateRetrieval

    qrels = {"q1": {"d1": 1}, "q2": {"d2": 1}}
    run = {"q1": {"d1": 1.0, "x": 0.5}}
    agg, pq = evaluate_run(qrels, run)
    assert pq["NDCG@10"] == {"q1": 1.0, "q2": 0.0}
    assert agg["NDCG@10"] == 0.5 and agg["Recall@100"] == 0.5
    beir_ndcg, _, _, _ = EvaluateRetrieval.evaluate(qrels, copy.deepcopy(run), [10])
    assert beir_ndcg["NDCG@10"] == 1.0  # BEIR averages over the run's queries only


def test_matches_beir_when_every_query_is_retrieved() -> None:
    from beir.retrieval.evaluation import EvaluateRetrieval

    rng = np.random.default_rng(3)
    qrels = {
        f"q{i}": {f"d{j}": int(rng.integers(1, 3)) for j in rng.choice(40, 3, replace=False)}
        for i in range(12)
    }
    run = {q: {f"d{j}": float(rng.random()) for j in range(40)} for q in qrels}
    agg, _ = evaluate_run(qrels, run, K)
    ndcg, _map, recall, prec = EvaluateRetrieval.evaluate(qrels, copy.deepcopy(run), list(K))
    mrr = EvaluateRetrieval.evaluate_custom(qrels, run, [10], metric="mrr")
    for part in (ndcg, _map, recall, prec, mrr):
        for key, value in part.items():
            assert agg[key] == pytest.approx(value, abs=1e-5)  # BEIR rounds to 5 decimals


def test_identical_ids_and_no_mutation() -> None:
    qrels = {"q1": {"q1": 2, "d": 1}}
    run = {"q1": {"q1": 0.9, "d": 0.1}}
    before = copy.deepcopy(run)
    _, kept = evaluate_run(qrels, run)
    _, dropped = evaluate_run(qrels, run, ignore_identical_ids=True)
    assert kept["NDCG@1"]["q1"] == 1.0 and kept["Recall@1"]["q1"] == 0.5
    # "d" (gain 1) moves to rank 1; the ideal ranking still starts with "q1" (gain 2)
    assert dropped["NDCG@1"]["q1"] == 0.5 and dropped["Recall@100"]["q1"] == 0.5
    assert run == before
    with pytest.raises(ValueError):
        evaluate_run(qrels, {"q1": {"d": float("nan")}})


def test_bootstrap_ci() -> None:
    rng = np.random.default_rng(0)
    small = rng.random(20)
    large = rng.random(2000)
    mean, low, high = bootstrap_ci(small, n_resamples=2000)
    assert low <= mean <= high and mean == pytest.approx(small.mean())
    m2, l2, h2 = bootstrap_ci(large, n_resamples=2000)
    assert l2 <= m2 <= h2
    assert h2 - l2 < (high - low) / 3
    assert bootstrap_ci(small, n_resamples=500) == bootstrap_ci(small, n_resamples=500)
    assert bootstrap_ci([0.4] * 10, n_resamples=100) == (0.4, 0.4, 0.4)
    by_query = {f"q{i}": v for i, v in enumerate(small)}
    shuffled = dict(reversed(list(by_query.items())))
    assert bootstrap_ci(shuffled, n_resamples=500) == bootstrap_ci(
        [by_query[q] for q in sorted(by_query)], n_resamples=500)
    with pytest.raises(ValueError):
        bootstrap_ci([])


def test_paired_bootstrap() -> None:
    rng = np.random.default_rng(1)
    base = {f"q{i}": float(v) for i, v in enumerate(rng.random(50) * 0.8)}
    better = {q: v + 0.1 + 0.05 * float(rng.standard_normal()) for q, v in base.items()}
    out = paired_bootstrap(better, base, n_resamples=2000)
    assert out["mean_diff"] > 0.05 and out["ci_low"] > 0 and out["p_value"] < 0.05
    same = paired_bootstrap(base, dict(base), n_resamples=2000)
    assert same["mean_diff"] == 0.0 and same["p_value"] == 1.0
    noisy = {q: v + 0.05 * float(rng.standard_normal()) for q, v in base.items()}
    assert paired_bootstrap(noisy, base, n_resamples=2000)["p_value"] > 0.05
    with pytest.raises(ValueError, match="q7"):
        paired_bootstrap(base, {q: v for q, v in base.items() if q != "q7"})


def test_paper_mapping() -> None:
    assert tables.paper_ndcg10("scifact", "bm25") == 66.5
    assert tables.paper_ndcg10("scifact", "e5-labelled") == 73.7
    assert tables.paper_ndcg10("nfcorpus", "minilm-sup") == 35.8
    assert tables.paper_ndcg10("scifact", "minilm-sft") == 78.9
    assert tables.paper_ndcg10("scifact", "minilm-final") == 80.5
    assert tables.paper_ndcg10("scifact", "minilm-sft-nosyn") == 76.7
    assert tables.paper_ndcg10("nfcorpus", "minilm-sft-nocot") == 40.8
    assert tables.paper_ndcg10("fiqa", "minilm-final-bt") == 35.7
    assert tables.paper_ndcg10("scifact", "minilm-final-noverify") == 79.7
    assert tables.paper_ndcg10("scifact", "minilm-sft-noverify") is None
    assert tables.paper_ndcg10("scifact", "minilm") is None
    assert tables.paper_row("something-else") is None
    order = ["zzz", "m-final", "m-sft", "bm25", "m-final-bt", "e5", "m-sft-nocot", "m-labelled"]
    assert sorted(order, key=tables.pipeline_key) == [
        "bm25",
        "e5",
        "m-labelled",
        "m-sft-nocot",
        "m-sft",
        "m-final",
        "m-final-bt",
        "zzz",
    ]


def _fake(model: str, shift: float, n: int = 30) -> dict:
    rng = np.random.default_rng(len(model))
    values = np.clip(rng.random(n) * 0.6 + shift, 0, 1)
    per_query = {f"q{i}": float(v) for i, v in enumerate(values)}
    mean = float(np.mean(values))
    metric_values = {m: mean for m in tables.TABLE_METRICS}
    return result_files.make_result(
        model, "scifact", metric_values, {"NDCG@10": per_query}, config={"seed": 0}
    )


def test_tables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(paths, "results_root", lambda: tmp_path)
    for model, shift in (("minilm-sft", 0.35), ("bm25", 0.2), ("minilm", 0.0)):
        result_files.save_result(_fake(model, shift))
    folder = tmp_path / "scifact"
    (folder / "notes.json").write_text(json.dumps({"comment": "not a result"}))
    results = result_files.load_results("scifact")
    assert sorted(r["model"] for r in results) == ["bm25", "minilm", "minilm-sft"]

    text = tables.markdown_table("scifact", results, baseline="bm25", n_resamples=300)
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    assert [row.split("|")[1].strip() for row in rows] == ["`bm25`", "`minilm`", "`minilm-sft`"]
    header = [c.strip() for c in text.splitlines()[0].strip("|").split("|")]
    cells = {r.split("|")[1].strip(): [c.strip() for c in r.strip("|").split("|")] for r in rows}
    assert cells["`bm25`"][header.index("paper nDCG@10")] == "66.5"
    assert cells["`minilm`"][header.index("paper nDCG@10")] == "-"
    assert re.fullmatch(r"\d+\.\d \[\d+\.\d, \d+\.\d\]", cells["`bm25`"][header.index("NDCG@10")])
    delta = cells["`minilm-sft`"][header.index("Δ vs bm25")]
    assert re.fullmatch(r"\+\d+\.\d \[[+-]\d+\.\d, [+-]\d+\.\d\] p[=<]\d\.\d+", delta)

    pairs = tables.paired_table(results, n_resamples=300)
    assert pairs.count("\n| `") == 3

    md = tables.write_table("scifact", n_resamples=200)
    assert md == folder / "README.md"
    assert "![](ndcg10.png)" in md.read_text()
    assert (folder / "ndcg10.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(folder.glob(".*.tmp"))


def test_malformed_result_file_is_named(tmp_path: Path) -> None:
    folder = tmp_path / "scifact"
    folder.mkdir()
    (folder / "broken.json").write_text("{not json")
    with pytest.raises(DataError, match="broken.json"):
        result_files.load_results("scifact", root=tmp_path)
    (folder / "broken.json").write_text(json.dumps({"model": "x", "metrics": {"NDCG@10": 2.0}}))
    with pytest.raises(DataError, match="broken.json"):
        result_files.load_results("scifact", root=tmp_path)


def test_default_root_is_repo_results() -> None:
    assert result_files.results_dir("scifact") == paths.ROOT / "results" / "scifact"


def test_seed_mean_difference_averages_each_query_over_seeds() -> None:
    seed_a = ({"q1": 0.9, "q2": 0.5}, {"q1": 0.5, "q2": 0.5})  # +0.4, 0
    seed_b = ({"q1": 0.6, "q2": 0.2}, {"q1": 0.6, "q2": 0.4})  # 0, -0.2
    mean = metrics.seed_mean_difference([seed_a, seed_b])
    assert mean == pytest.approx({"q1": 0.2, "q2": -0.1})
    with pytest.raises(ValueError, match="pair 1 holds other query ids"):
        metrics.seed_mean_difference([seed_a, ({"q1": 1.0}, {"q1": 0.0})])
    with pytest.raises(ValueError, match="at least one"):
        metrics.seed_mean_difference([])
