"""Retrieval over a BEIR corpus: exact dense search (cosine) and BM25 (bm25s).

Dense search encodes the corpus once per model (embeddings are cached on disk, keyed by the
model's weights, prefixes, max length and the corpus), then scores queries by a batched matrix
product and keeps the top ``k``. This is exact search and fits corpora of a few million
passages in memory at 384-768 dimensions; beyond that use a FAISS index (``faiss-cpu``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from sentence_transformers import SentenceTransformer

from syntriever.data import Corpus, passage_text
from syntriever.encoders import add_prefix
from syntriever.paths import cache_root

logger = logging.getLogger(__name__)

Run = dict[str, dict[str, float]]


@dataclass
class SearchStats:
    """Timings of one search (seconds) and encoding throughput."""

    timings: dict[str, float] = field(default_factory=dict)
    passages_per_s: float | None = None
    queries_per_s: float | None = None
    corpus_cache_hit: bool = False


def model_fingerprint(model: SentenceTransformer) -> str:
    """A hash of the model's weights and input handling, for cache keys."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    digest.update(json.dumps([model.prompts, model.max_seq_length], sort_keys=True).encode())
    return digest.hexdigest()[:16]


def encode(
    model: SentenceTransformer, texts: list[str], role: str, batch_size: int = 32, progress: bool = True
) -> np.ndarray:
    """L2-normalised float32 embeddings of ``texts`` for ``role`` "query" or "document"."""
    emb = model.encode(
        add_prefix(model, texts, role), batch_size=batch_size, show_progress_bar=progress,
        convert_to_numpy=True, normalize_embeddings=True,
    )
    return np.asarray(emb, dtype=np.float32)


def encode_corpus(
    model: SentenceTransformer, corpus: Corpus, batch_size: int = 32, use_cache: bool = True,
    stats: SearchStats | None = None,
) -> tuple[list[str], np.ndarray]:
    """Corpus ids and their embeddings, from the on-disk cache when possible."""
    doc_ids = list(corpus)
    key = hashlib.sha256()
    key.update(model_fingerprint(model).encode())
    for did in doc_ids:
        key.update(did.encode() + b"\0" + str(len(corpus[did]["text"])).encode() + b"\0")
    path = cache_root() / "embeddings" / f"{key.hexdigest()[:24]}.npy"
    if use_cache and path.is_file():
        emb = np.load(path)
        if emb.shape[0] == len(doc_ids):
            logger.info("corpus embeddings from cache %s", path)
            if stats:
                stats.corpus_cache_hit = True
            return doc_ids, emb
    start = time.perf_counter()
    emb = encode(model, [passage_text(corpus[d]) for d in doc_ids], "document", batch_size)
    seconds = time.perf_counter() - start
    if stats:
        stats.timings["encode_corpus_s"] = round(seconds, 2)
        stats.passages_per_s = round(len(doc_ids) / seconds, 2)
    logger.info("encoded %d passages in %.1f s (%.1f passages/s)", len(doc_ids), seconds,
                len(doc_ids) / seconds)
    if use_cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npy")
        np.save(tmp, emb)
        tmp.replace(path)
    return doc_ids, emb


def top_k(
    query_emb: np.ndarray, doc_emb: np.ndarray, k: int, chunk: int = 1024
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-``k`` by inner product: (indices, scores), each (n_queries, k), best first."""
    k = min(k, doc_emb.shape[0])
    docs = torch.from_numpy(doc_emb)
    all_idx, all_scores = [], []
    for start in range(0, query_emb.shape[0], chunk):
        scores = torch.from_numpy(query_emb[start : start + chunk]) @ docs.T
        values, indices = torch.topk(scores, k, dim=1)
        all_idx.append(indices.numpy())
        all_scores.append(values.numpy())
    return np.concatenate(all_idx), np.concatenate(all_scores)


def dense_search(
    model: SentenceTransformer,
    corpus: Corpus,
    queries: dict[str, str],
    k: int = 100,
    batch_size: int = 32,
    use_cache: bool = True,
) -> tuple[Run, SearchStats]:
    """Top-``k`` passages per query by cosine similarity: ``{qid: {doc_id: score}}``."""
    stats = SearchStats()
    doc_ids, doc_emb = encode_corpus(model, corpus, batch_size, use_cache, stats)
    qids = list(queries)
    start = time.perf_counter()
    q_emb = encode(model, [queries[q] for q in qids], "query", batch_size, progress=False)
    seconds = time.perf_counter() - start
    stats.timings["encode_queries_s"] = round(seconds, 3)
    stats.queries_per_s = round(len(qids) / max(seconds, 1e-9), 1)
    start = time.perf_counter()
    indices, scores = top_k(q_emb, doc_emb, k)
    stats.timings["search_s"] = round(time.perf_counter() - start, 3)
    run = {
        qid: {doc_ids[i]: float(s) for i, s in zip(indices[row], scores[row], strict=True)}
        for row, qid in enumerate(qids)
    }
    return run, stats


def bm25_search(corpus: Corpus, queries: dict[str, str], k: int = 100) -> tuple[Run, SearchStats]:
    """Top-``k`` passages per query by BM25 (bm25s, English stop words, Snowball stemming)."""
    import bm25s

    try:
        import Stemmer

        stemmer = Stemmer.Stemmer("english")
    except ImportError:  # PyStemmer is optional for bm25s
        stemmer = None
        logger.warning("PyStemmer not installed: BM25 without stemming")
    stats = SearchStats()
    doc_ids = list(corpus)
    start = time.perf_counter()
    tokens = bm25s.tokenize(
        [passage_text(corpus[d]) for d in doc_ids], stopwords="en", stemmer=stemmer, show_progress=False
    )
    index = bm25s.BM25()
    index.index(tokens, show_progress=False)
    stats.timings["index_s"] = round(time.perf_counter() - start, 3)
    qids = list(queries)
    start = time.perf_counter()
    q_tokens = bm25s.tokenize(
        [queries[q] for q in qids], stopwords="en", stemmer=stemmer, show_progress=False
    )
    results, scores = index.retrieve(q_tokens, k=min(k, len(doc_ids)), show_progress=False)
    stats.timings["search_s"] = round(time.perf_counter() - start, 3)
    run = {
        qid: {doc_ids[int(i)]: float(s) for i, s in zip(results[row], scores[row], strict=True)}
        for row, qid in enumerate(qids)
    }
    return run, stats


def save_run(path: Path, run: Run) -> None:
    """Write a run as JSON (ranked doc ids and scores per query)."""
    from syntriever.jsonl import write_json

    write_json(path, run)
