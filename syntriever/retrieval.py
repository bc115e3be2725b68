"""Retrieval over a BEIR corpus: dense search (cosine, exact or FAISS) and BM25 (bm25s); the
ranking of every training query by the stage-1 model (:func:`retrieve_training_queries`, the
input of the stage-2 judge).

Dense search encodes the corpus once per model (embeddings are cached on disk, keyed by the
model's weights, prefixes, max length, the encoding precision and the corpus), then scores
queries by a batched matrix product and keeps the top ``k``. Small corpora (SciFact) keep one
matrix in memory. Large ones (MS MARCO: 8.8M x 768 float32 = 27 GB) are encoded in shards of
``SHARD_SIZE`` passages, each saved as its own ``.npy`` as soon as it is done (a re-run encodes
only the missing shards) and memory-mapped, so the exact search reads one shard at a time;
``index="faiss"`` searches a FAISS ``IndexFlatIP`` instead (same results; the index holds every
vector in RAM). Encoding can run in one sentence-transformers worker process per device
(``devices=["cuda:0", "cuda:1"]``, float32), else in bfloat16 autocast where the CPU has it
(:mod:`syntriever.precision`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sentence_transformers import SentenceTransformer
from tqdm import tqdm

from syntriever.data import Corpus, load_dataset, passage_text, training_queries
from syntriever.encoders import add_prefix, open_encoder
from syntriever.errors import UserError
from syntriever.jsonl import DataError, atomic_open, read_jsonl_numbered, write_json, write_jsonl
from syntriever.metrics import evaluate_run
from syntriever.paths import cache_root, file_safe, generated_dir, portable
from syntriever.precision import autocast, resolve_precision
from syntriever.provenance import with_commands

logger = logging.getLogger(__name__)

Run = dict[str, dict[str, float]]
Pool = dict[str, Any]

INDEXES = ("exact", "faiss")
SHARD_SIZE = 100_000  # passages per shard of a sharded corpus encoding
SHARD_ABOVE = 1_000_000  # corpora with more passages are always sharded and memory-mapped
RETRIEVAL_KEYS = ("query_id", "query", "doc_ids", "scores", "texts")


@dataclass
class SearchStats:
    """Timings of one search (seconds), encoding throughput and how the corpus was stored."""

    timings: dict[str, float] = field(default_factory=dict)
    passages_per_s: float | None = None
    queries_per_s: float | None = None
    corpus_cache_hit: bool = False
    shard_size: int | None = None
    precision: str = "fp32"


def model_fingerprint(model: SentenceTransformer) -> str:
    """A hash of the model's weights and input handling, for cache keys."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    digest.update(json.dumps([model.prompts, model.max_seq_length], sort_keys=True).encode())
    return digest.hexdigest()[:16]


def corpus_key(model: SentenceTransformer, corpus: Corpus, precision: str = "fp32") -> str:
    """Cache key of a model's corpus embeddings (model fingerprint, precision unless fp32, doc ids
    and text lengths)."""
    key = hashlib.sha256()
    key.update(model_fingerprint(model).encode() + (b"" if precision == "fp32" else precision.encode()))
    for did in corpus:
        key.update(did.encode() + b"\0" + str(len(corpus[did]["text"])).encode() + b"\0")
    return key.hexdigest()[:24]


@contextmanager
def encoding_pool(model: SentenceTransformer, devices: Sequence[str] | None) -> Iterator[Pool | None]:
    """A sentence-transformers multi-process pool, one worker per device; None without devices.

    Starting the pool leaves ``model`` on the CPU (sentence-transformers moves it there)."""
    if not devices:
        yield None
        return
    pool = model.start_multi_process_pool(list(devices))
    try:
        yield pool
    finally:
        model.stop_multi_process_pool(pool)


def encode(
    model: SentenceTransformer, texts: list[str], role: str, batch_size: int = 32, progress: bool = True,
    pool: Pool | None = None, precision: str = "fp32",
) -> np.ndarray:
    """L2-normalised float32 embeddings of ``texts`` for ``role`` "query" or "document",
    in this process or in the workers of ``pool`` (:func:`encoding_pool`, fp32 only), computed
    in ``precision`` "fp32" or "bf16" (autocast; normalised after the cast to float32)."""
    if pool is not None and precision != "fp32":
        raise ValueError("multi-process encoding runs in fp32 (its workers do not use autocast)")
    with autocast(precision, model.device.type):
        emb = model.encode(add_prefix(model, texts, role), batch_size=batch_size, show_progress_bar=progress,
                           convert_to_numpy=True, normalize_embeddings=precision == "fp32", pool=pool)
    emb = np.asarray(emb, dtype=np.float32)
    return emb if precision == "fp32" else emb / np.linalg.norm(emb, axis=1, keepdims=True).clip(1e-12)


def _load_cached(path: Path, mmap_mode: str | None) -> np.ndarray | None:
    """A cached embedding block, or None (logged) when the file is damaged."""
    try:
        return np.load(path, mmap_mode=mmap_mode)
    except (ValueError, OSError, EOFError) as err:
        logger.warning("%s: damaged embedding cache (%s); re-encoding and replacing it", path, err)
        return None


def encode_corpus(
    model: SentenceTransformer, corpus: Corpus, batch_size: int = 32, use_cache: bool = True,
    stats: SearchStats | None = None, *, shard_size: int | None = None, pool: Pool | None = None,
    precision: str = "fp32",
) -> tuple[list[str], list[np.ndarray]]:
    """Corpus ids and their embeddings (computed in ``precision``) as row blocks, from the
    on-disk cache when possible.

    Without ``shard_size``: one in-memory matrix, cached as ``embeddings/<key>.npy``. With it:
    blocks of ``shard_size`` rows, each saved to ``embeddings/<key>-s<shard_size>/shard-00000.npy``
    when done and memory-mapped. ``use_cache=False`` re-encodes everything and refreshes the
    cache; a cache file that does not load (truncated) is re-encoded and replaced, with a warning."""
    if shard_size is not None and shard_size < 1:
        raise ValueError(f"shard_size must be positive, got {shard_size}")
    doc_ids = list(corpus)
    key, root = corpus_key(model, corpus, precision), cache_root() / "embeddings"
    if shard_size is None:
        parts = [(root / f"{key}.npy", 0, len(doc_ids))]
    else:
        starts = range(0, len(doc_ids), shard_size)
        parts = [(root / f"{key}-s{shard_size}" / f"shard-{i:05d}.npy", start,
                  min(start + shard_size, len(doc_ids))) for i, start in enumerate(starts)]
    mmap_mode = None if shard_size is None else "r"
    blocks: list[np.ndarray] = []
    encoded, seconds = 0, 0.0
    for path, start, end in tqdm(parts, desc="corpus shards", unit="shard", disable=len(parts) < 2):
        if use_cache and path.is_file():
            block = _load_cached(path, mmap_mode)
            if block is not None and block.shape[0] == end - start:
                logger.debug("corpus embeddings %d-%d from cache %s", start, end, path)
                blocks.append(block)
                continue
        began = time.perf_counter()
        texts = [passage_text(corpus[d]) for d in doc_ids[start:end]]
        block = encode(model, texts, "document", batch_size, pool=pool, precision=precision)
        seconds += time.perf_counter() - began
        encoded += end - start
        with atomic_open(path, "wb") as fh:  # also without use_cache: replaces a stale or broken cache
            np.save(fh, block)
        block = np.load(path, mmap_mode=mmap_mode) if mmap_mode else block
        blocks.append(block)
    if encoded:
        logger.info("encoded %d passages in %.1f s (%.1f passages/s, %s)%s", encoded, seconds,
                    encoded / seconds, precision,
                    f", {len(parts)} shards in {parts[0][0].parent}" if shard_size else "")
    else:
        logger.info("corpus embeddings from cache %s", parts[0][0].parent if shard_size else parts[0][0])
    if stats:
        stats.corpus_cache_hit = encoded == 0
        stats.shard_size = shard_size
        stats.precision = precision
        if encoded:
            stats.timings["encode_corpus_s"] = round(seconds, 2)
            stats.passages_per_s = round(encoded / seconds, 2)
    return doc_ids, blocks


def _as_blocks(doc_emb: np.ndarray | Sequence[np.ndarray]) -> Sequence[np.ndarray]:
    return [doc_emb] if isinstance(doc_emb, np.ndarray) else doc_emb


def top_k(
    query_emb: np.ndarray, doc_emb: np.ndarray | Sequence[np.ndarray], k: int, chunk: int = 1024
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-``k`` by inner product: (indices, scores), each (n_queries, k), best first.

    ``doc_emb`` is one matrix or its row blocks (memory-mapped shards are read one at a time and
    their top-``k`` merged)."""
    blocks = _as_blocks(doc_emb)
    k = min(k, sum(block.shape[0] for block in blocks))
    queries = torch.from_numpy(query_emb)
    best_scores = best_idx = torch.empty(0)
    offset = 0
    for block in tqdm(blocks, desc="searching shards", unit="shard", disable=len(blocks) < 2):
        docs = torch.from_numpy(block if block.flags.writeable else np.array(block))
        found = [torch.topk(queries[s : s + chunk] @ docs.T, min(k, docs.shape[0]), dim=1)
                 for s in range(0, queries.shape[0], chunk)]
        scores = torch.cat([f.values for f in found])
        idx = torch.cat([f.indices for f in found]) + offset
        if offset:
            merged = torch.cat([best_scores, scores], 1)
            scores, pos = torch.topk(merged, min(k, merged.shape[1]), dim=1)
            idx = torch.gather(torch.cat([best_idx, idx], 1), 1, pos)
        best_scores, best_idx, offset = scores, idx, offset + docs.shape[0]
    return best_idx.numpy(), best_scores.numpy()


def _faiss() -> Any:
    """The ``faiss`` module, or an error saying how to install it."""
    try:
        import faiss
    except ImportError:
        raise ImportError(
            "index='faiss' needs FAISS: pip install faiss-cpu (or faiss-gpu on a CUDA machine)"
        ) from None
    return faiss


def faiss_top_k(
    query_emb: np.ndarray, doc_emb: np.ndarray | Sequence[np.ndarray], k: int, chunk: int = 4096
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`top_k` through a FAISS ``IndexFlatIP`` (exact inner product) filled block by block."""
    blocks = _as_blocks(doc_emb)
    index = _faiss().IndexFlatIP(blocks[0].shape[1])
    for block in tqdm(blocks, desc="faiss index", unit="shard", disable=len(blocks) < 2):
        index.add(np.ascontiguousarray(block, dtype=np.float32))
    k = min(k, index.ntotal)
    starts = range(0, query_emb.shape[0], chunk)
    found = [index.search(np.ascontiguousarray(query_emb[s : s + chunk]), k)
             for s in tqdm(starts, desc="faiss search", unit="chunk", disable=len(starts) < 2)]
    return np.concatenate([f[1] for f in found]), np.concatenate([f[0] for f in found])


def dense_search(
    model: SentenceTransformer,
    corpus: Corpus,
    queries: dict[str, str],
    k: int = 100,
    batch_size: int = 32,
    use_cache: bool = True,
    *,
    index: str = "exact",
    devices: Sequence[str] | None = None,
    shard_size: int | None = None,
    precision: str = "auto",
) -> tuple[Run, SearchStats]:
    """Top-``k`` passages per query by cosine similarity: ``{qid: {doc_id: score}}``.

    ``index``: "exact" (torch top-k) or "faiss" (``IndexFlatIP``). ``devices``: encode corpus and
    queries in one worker per device (["cuda:0", "cuda:1"], ["cpu", "cpu"]); None: this process.
    The corpus is sharded (``shard_size``, default ``SHARD_SIZE``) when ``shard_size`` is given,
    the index is FAISS, or it has more than ``SHARD_ABOVE`` passages. ``precision``: "fp32",
    "bf16" or "auto" (:func:`syntriever.precision.resolve_precision`; with ``devices``, fp32);
    ``stats.precision`` is the one used."""
    if index not in INDEXES:
        raise ValueError(f"index must be one of {INDEXES}, not {index!r}")
    if shard_size is None and (index != "exact" or len(corpus) > SHARD_ABOVE):
        shard_size = SHARD_SIZE
    used = resolve_precision(precision, model.device.type, pooled=bool(devices))
    stats = SearchStats(precision=used)
    qids = list(queries)
    with encoding_pool(model, devices) as pool:
        doc_ids, doc_emb = encode_corpus(model, corpus, batch_size, use_cache, stats, shard_size=shard_size,
                                         pool=pool, precision=used)
        start = time.perf_counter()
        q_emb = encode(model, [queries[q] for q in qids], "query", batch_size, progress=len(qids) >= 10_000,
                       pool=pool, precision=used)
        seconds = time.perf_counter() - start
    stats.timings["encode_queries_s"] = round(seconds, 3)
    stats.queries_per_s = round(len(qids) / max(seconds, 1e-9), 1)
    start = time.perf_counter()
    indices, scores = (faiss_top_k if index == "faiss" else top_k)(q_emb, doc_emb, k)
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


# --------------------------------------------------------------------------------------------
# The training queries ranked by the stage-1 model (input of the stage-2 judge)
# --------------------------------------------------------------------------------------------


@contextmanager
def timed(timings: dict[str, float], name: str) -> Iterator[None]:
    """Record the wall time of a block in ``timings[name]`` (seconds)."""
    start = time.perf_counter()
    try:
        yield
    finally:
        timings[name] = round(time.perf_counter() - start, 3)


def retrieval_path(dataset: str, model_name: str) -> Path:
    """``generated/<dataset>/retrieval-<model>.jsonl``."""
    return generated_dir(dataset) / f"retrieval-{file_safe(model_name)}.jsonl"


def retrieve_training_queries(
    model_name: str,
    dataset: str,
    k: int = 100,
    text_k: int = 0,
    *,
    batch_size: int = 32,
    max_seq_length: int | None = None,
    use_cache: bool = True,
    index: str = "exact",
    devices: Sequence[str] | None = None,
    shard_size: int | None = None,
    precision: str = "fp32",
) -> Path:
    """Rank the corpus for every training query (train split, a relevant passage) with the
    stage-1 model; write one JSONL line per query and a summary; return the JSONL path.

    Lines: ``{"query_id", "query", "doc_ids", "scores", "texts"}``, ``k`` ranked doc ids and
    cosine scores, and the passage texts of the first ``text_k`` (none by default: the
    comparisons read them from the corpus, :func:`attach_texts`, which keeps the file small
    enough to commit, ~2.2 KB a query at k = 100). ``index``, ``devices``, ``shard_size`` and
    ``precision`` choose the search backend, encoding processes, corpus shards and encoding
    precision (``dense_search``; fp32 by default, see retrieval.py)."""
    if not 0 <= text_k <= k:
        raise UserError(f"need 0 <= text_k <= k, got text_k={text_k}, k={k}")
    timings: dict[str, float] = {}
    with timed(timings, "load_s"):
        ds = load_dataset(dataset, "train")
        queries = training_queries(ds)
        model, model_path = open_encoder(model_name, ds.name, max_seq_length=max_seq_length)
    with timed(timings, "search_total_s"):
        run, stats = dense_search(model, ds.corpus, queries, k, batch_size, use_cache,
                                  index=index, devices=devices, shard_size=shard_size, precision=precision)
    rows = []
    for qid, query in queries.items():
        ranked = run[qid]  # insertion order is rank order
        doc_ids = list(ranked)
        rows.append({
            "query_id": qid, "query": query, "doc_ids": doc_ids,
            "scores": [round(ranked[d], 6) for d in doc_ids],
            "texts": [ds.passage_text(d) for d in doc_ids[:text_k]],
        })
    out = retrieval_path(ds.name, model_name)
    write_jsonl(out, rows)
    cutoffs = sorted({1, max(text_k, 1), 10, k})
    qrels = {qid: ds.qrels[qid] for qid in queries}
    aggregate, _ = evaluate_run(qrels, run, cutoffs)
    summary = {
        "model": model_name, "model_path": portable(model_path), "dataset": ds.name,
        "split": "train", "queries": len(rows), "corpus": len(ds.corpus), "k": k, "text_k": text_k,
        "recall": {f"Recall@{c}": round(aggregate[f"Recall@{c}"], 4) for c in cutoffs if c <= k},
        "mrr@10": round(aggregate["MRR@10"], 4), "max_seq_length": model.max_seq_length,
        "timings": {**timings, **stats.timings}, "passages_per_s": stats.passages_per_s,
        "corpus_embeddings_cached": stats.corpus_cache_hit, "index": index,
        "devices": list(devices) if devices else None, "shard_size": stats.shard_size,
        "precision": stats.precision,
    }
    write_json(out.with_suffix(".summary.json"), with_commands(summary))
    logger.info("wrote %d ranked lists to %s (%s)", len(rows), out, summary["recall"])
    return out


def load_retrieval(path: Path, model: str | None = None) -> list[dict[str, Any]]:
    """Read ``model``'s retrieval file, checking every line (one record per query, each passage once)."""
    records, seen = [], set()
    make = f"`python retrieval.py {model or path.stem.removeprefix('retrieval-')} {path.parent.name}`"
    for line, rec in read_jsonl_numbered(path):
        for key in RETRIEVAL_KEYS:
            if key not in rec:
                raise DataError(f"{path}:{line}: retrieval record lacks {key!r}")
        if len(rec["doc_ids"]) != len(rec["scores"]) or len(rec["texts"]) > len(rec["doc_ids"]):
            raise DataError(f"{path}:{line}: doc_ids, scores and texts do not line up")
        if rec["query_id"] in seen or len(set(rec["doc_ids"])) != len(rec["doc_ids"]):
            raise DataError(f"{path}:{line}: query {rec['query_id']!r} twice in the file, or a passage "
                            f"twice in its ranking; make the file again with {make}")
        seen.add(rec["query_id"])
        records.append(rec)
    if not records:
        raise DataError(f"{path}: no retrieval records; make the file again with {make}")
    return records
