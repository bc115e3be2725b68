"""Large-corpus retrieval: FAISS search, sharded resumable encoding, multi-process encoding."""

from __future__ import annotations

import random
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from syntriever import retrieval
from syntriever.data import Corpus, passage_text
from syntriever.evaluation import evaluate_model
from syntriever.jsonl import write_json, write_jsonl
from syntriever.provenance import CARD_NAME
from syntriever.retrieval import dense_search, encode, encode_corpus, encoding_pool, faiss_top_k, top_k
from tests.conftest import TINY_WORDS


def tiny_corpus(n: int, seed: int = 0) -> Corpus:
    """``n`` distinct passages of 4-9 words from the tiny model's vocabulary."""
    rng, texts = random.Random(seed), set()
    while len(texts) < n:
        texts.add(" ".join(rng.choices(TINY_WORDS, k=rng.randint(4, 9))))
    return {f"d{i}": {"title": "", "text": t} for i, t in enumerate(sorted(texts))}


def unit_rows(rng: np.random.Generator, n: int, dim: int = 32) -> np.ndarray:
    rows = rng.standard_normal((n, dim)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SYNTRIEVER_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "embeddings"


def test_faiss_and_sharded_exact_search_match_in_memory_exact_search() -> None:
    rng = np.random.default_rng(0)
    docs, queries = unit_rows(rng, 1000), unit_rows(rng, 70)
    want_idx, want_scores = top_k(queries, docs, 20, chunk=32)
    # the reference: numpy's full sort
    full = queries @ docs.T
    np.testing.assert_array_equal(want_idx, np.argsort(-full, axis=1)[:, :20])
    blocks = [docs[:7], docs[7:300], docs[300:]]  # a first block smaller than k
    for idx, scores in (faiss_top_k(queries, docs, 20, chunk=32), faiss_top_k(queries, blocks, 20),
                        top_k(queries, blocks, 20, chunk=32)):
        np.testing.assert_array_equal(idx, want_idx)
        np.testing.assert_allclose(scores, want_scores, atol=1e-5)


def test_faiss_dense_search_matches_exact_on_tiny_model(tiny_st_model, private_cache: Path) -> None:
    corpus = tiny_corpus(60)
    texts = ["cats and dogs", "the capital of france", "why does the sun heat the earth", "gene drug trial"]
    queries = {f"q{i}": text for i, text in enumerate(texts)}
    exact, stats = dense_search(tiny_st_model, corpus, queries, k=10, batch_size=8)
    assert stats.shard_size is None and len(list(private_cache.glob("*.npy"))) == 1
    via_faiss, stats = dense_search(tiny_st_model, corpus, queries, k=10, batch_size=8, index="faiss",
                                    shard_size=7)
    assert stats.shard_size == 7 and len(list(private_cache.glob("*-s7/shard-*.npy"))) == 9
    for qid in queries:
        assert list(via_faiss[qid]) == list(exact[qid])
        np.testing.assert_allclose(list(via_faiss[qid].values()), list(exact[qid].values()), atol=1e-5)


def test_faiss_missing_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "faiss", None)  # import faiss now raises ImportError
    with pytest.raises(ImportError, match="pip install faiss-cpu"):
        faiss_top_k(np.eye(2, dtype=np.float32), np.eye(2, dtype=np.float32), 1)


def test_sharded_encoding_matches_single_shot_and_resumes_missing_shards(
    tiny_st_model, private_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    corpus = tiny_corpus(26)
    ids, whole = encode_corpus(tiny_st_model, corpus, batch_size=8)
    assert len(whole) == 1 and whole[0].shape == (26, 32)
    ids_sharded, shards = encode_corpus(tiny_st_model, corpus, batch_size=8, shard_size=4)
    assert ids_sharded == ids and [len(s) for s in shards] == [4, 4, 4, 4, 4, 4, 2]
    assert all(isinstance(s, np.memmap) for s in shards)
    np.testing.assert_allclose(np.concatenate(shards), whole[0], atol=1e-5)

    encoded: list[list[str]] = []

    def counting_encode(model, texts, role, *args, **kwargs):
        encoded.append(texts)
        return encode(model, texts, role, *args, **kwargs)

    monkeypatch.setattr(retrieval, "encode", counting_encode)
    stats = retrieval.SearchStats()
    _, again = encode_corpus(tiny_st_model, corpus, batch_size=8, shard_size=4, stats=stats)
    assert encoded == [] and stats.corpus_cache_hit
    (private_cache / f"{retrieval.corpus_key(tiny_st_model, corpus)}-s4" / "shard-00003.npy").unlink()
    _, resumed = encode_corpus(tiny_st_model, corpus, batch_size=8, shard_size=4, stats=stats)
    assert encoded == [[passage_text(corpus[d]) for d in ids[12:16]]]
    assert not stats.corpus_cache_hit and stats.passages_per_s
    np.testing.assert_allclose(np.concatenate(resumed), np.concatenate(shards), atol=1e-6)
    assert not list(private_cache.rglob("*.tmp.npy"))


def test_multi_process_encoding_matches_single_process(tiny_st_model) -> None:
    """Two CPU workers (spawned; each imports torch and sentence-transformers, a few seconds)."""
    texts = [passage_text(doc) for doc in tiny_corpus(20, seed=1).values()]
    single = encode(tiny_st_model, texts, "document", batch_size=4, progress=False)
    began = time.perf_counter()
    with encoding_pool(tiny_st_model, ["cpu", "cpu"]) as pool:
        assert pool is not None and len(pool["processes"]) == 2
        multi = encode(tiny_st_model, texts, "document", batch_size=4, progress=False, pool=pool)
        assert all(p.is_alive() for p in pool["processes"])
    assert time.perf_counter() - began < 120
    assert multi.shape == single.shape == (20, 32)
    np.testing.assert_allclose(multi, single, atol=1e-5)


def test_evaluate_model_records_faiss_backend(tiny_st_model_dir: Path, tmp_path: Path) -> None:
    corpus = tiny_corpus(40, seed=2)
    folder = tmp_path / "tiny-beir"
    (folder / "qrels").mkdir(parents=True)
    write_jsonl(folder / "corpus.jsonl", ({"_id": d, **doc} for d, doc in corpus.items()))
    qids = sorted(corpus)[:5]
    write_jsonl(folder / "queries.jsonl", ({"_id": f"q-{d}", "text": corpus[d]["text"]} for d in qids))
    lines = ["query-id\tcorpus-id\tscore", *(f"q-{d}\t{d}\t1" for d in qids)]
    (folder / "qrels" / "test.tsv").write_text("\n".join(lines) + "\n")
    records = {
        index: evaluate_model(str(tiny_st_model_dir), folder, top_k=10, results_root=tmp_path / index,
                              index=index, shard_size=16 if index == "faiss" else None)[0]
        for index in ("exact", "faiss")
    }
    assert records["exact"]["config"]["retriever"] == "dense exact cosine"
    assert records["faiss"]["config"]["retriever"] == "dense faiss cosine"
    assert records["faiss"]["config"]["shard_size"] == 16 and records["exact"]["config"]["shard_size"] is None
    assert records["faiss"]["metrics"] == records["exact"]["metrics"]
    # each query is a passage's own text, so that passage must rank first
    assert records["faiss"]["metrics"]["MRR@10"] > 0.9
    # a trained model's card: the result keeps its training record, phase by phase
    assert "training" not in records["exact"]["config"]  # no card
    trained = tmp_path / "trained"
    shutil.copytree(tiny_st_model_dir, trained)
    card = {"examples": 100, "steps": 4, "train_seconds": 9.5, "settings": {"bf16": True},
            "then": [{"phase": "labelled", "examples": 60, "steps": 2, "train_seconds": 3.0, "settings": {}}]}
    write_json(trained / CARD_NAME, card)
    record = evaluate_model(str(trained), folder, top_k=10, results_root=tmp_path / "trained-results")[0]
    assert record["config"]["training"] == [
        {"phase": "training", "examples": 100, "steps": 4, "train_seconds": 9.5, "bf16": True},
        {"phase": "labelled", "examples": 60, "steps": 2, "train_seconds": 3.0, "bf16": None}]
