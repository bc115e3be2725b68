"""evaluate.py end to end on a small slice of the real SciFact data."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from syntriever.data import load_dataset
from syntriever.evaluation import REPORTED, evaluate_model
from syntriever.jsonl import write_jsonl
from syntriever.result_files import load_results

ROOT = Path(__file__).resolve().parents[1]


def make_slice(scifact: Path, target: Path, n_queries: int = 20, n_docs: int = 150) -> Path:
    """A BEIR folder with ``n_queries`` real test queries, their relevant docs and random others."""
    full = load_dataset(scifact, "test")
    qids = sorted(full.qrels)[:n_queries]
    relevant = {d for q in qids for d in full.qrels[q]}
    others = sorted(set(full.corpus) - relevant)
    docs = sorted(relevant) + random.Random(0).sample(others, n_docs - len(relevant))
    (target / "qrels").mkdir(parents=True)
    write_jsonl(target / "corpus.jsonl", ({"_id": d, **full.corpus[d]} for d in docs))
    write_jsonl(target / "queries.jsonl", ({"_id": q, "text": full.queries[q]} for q in qids))
    pairs = [f"{q}\t{d}\t{s}" for q in qids for d, s in full.qrels[q].items()]
    lines = ["query-id\tcorpus-id\tscore", *pairs]
    (target / "qrels" / "test.tsv").write_text("\n".join(lines) + "\n")
    return target


def test_evaluate_writes_result_files_on_real_slice(scifact_dir: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNTRIEVER_CACHE", str(tmp_path / "cache"))
    folder = make_slice(scifact_dir, tmp_path / "scifact-slice")
    results = tmp_path / "results"
    for model in ("bm25", "minilm"):
        monkeypatch.setattr(sys, "argv", [str(ROOT / "evaluate.py"), model, str(folder)])
        record, path = evaluate_model(model, folder, "test", results_root=results)
        assert record["commands"] == [f"python evaluate.py {model} {folder}"]
        assert path == results / "scifact-slice" / f"{model}.json"
        assert set(REPORTED) <= set(record["metrics"])
        assert len(record["per_query"]["NDCG@10"]) == 20
        # 20 queries over 150 passages: both retrievers must find most relevant passages
        assert record["metrics"]["Recall@100"] > 0.8, record["metrics"]
    dense = json.loads((results / "scifact-slice" / "minilm.json").read_text())
    assert dense["config"]["passages_per_s"] > 0 and dense["timings"]["encode_corpus_s"] > 0
    assert {r["model"] for r in load_results("scifact-slice", results)} == {"bm25", "minilm"}
    # the second run reads the corpus embeddings from the cache
    record, _ = evaluate_model("minilm", folder, "test", results_root=results)
    assert record["config"]["corpus_embeddings_cached"] is True
    assert record["metrics"] == dense["metrics"]


def test_evaluate_cli_reports_a_clear_error_for_unknown_dataset(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "evaluate.py"), "bm25", "no-such-dataset"], cwd=tmp_path,
        capture_output=True, text=True, env={"SYNTRIEVER_DATA": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    assert out.returncode != 0
    assert "dataset not found" in out.stderr and "datasets/download.py no-such-dataset" in out.stderr


def test_current_result_is_of_the_weights_in_the_model_folder(
    tiny_st_model, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    from syntriever import evaluation
    from syntriever.names import model_dir
    from syntriever.provenance import CARD_NAME
    from syntriever.retrieval import model_fingerprint

    monkeypatch.setenv("SYNTRIEVER_OUTPUT", str(tmp_path / "out"))
    saved = tmp_path / "m.json"
    monkeypatch.setattr(evaluation, "result_path", lambda dataset, name, split: saved)
    assert evaluation.current_result("m", "toy", "dev") is None  # nothing saved
    folder = model_dir("m", "toy")
    tiny_st_model.save(str(folder))
    (folder / CARD_NAME).write_text("{}")
    own = model_fingerprint(evaluation.open_encoder("m", "toy")[0])
    record = {"model": "m", "created": "2000-01-01T00:00:00+00:00", "config": {"model_fingerprint": own}}
    saved.write_text(json.dumps(record))
    assert evaluation.current_result("m", "toy", "dev") == record  # same weights: current, however old
    with torch.no_grad():
        next(tiny_st_model.parameters()).add_(1.0)
    tiny_st_model.save(str(folder))  # trained again under the same name
    saved.write_text(json.dumps({**record, "created": "2999-01-01T00:00:00+00:00"}))
    assert evaluation.current_result("m", "toy", "dev") is None  # only the fingerprint tells
    # a result without a fingerprint: current only if created after the card was written
    saved.write_text(json.dumps({"model": "m", "created": "2000-01-01T00:00:00+00:00"}))
    assert evaluation.current_result("m", "toy", "dev") is None
    saved.write_text(json.dumps({"model": "m", "created": "2999-01-01T00:00:00"}))  # naive: UTC
    assert evaluation.current_result("m", "toy", "dev") is not None
    saved.write_text(json.dumps({"model": "m", "created": None, "config": None}))
    assert evaluation.current_result("m", "toy", "dev") is None
    assert evaluation.current_result("org/hub-model", "toy", "dev") is not None  # no card to compare
