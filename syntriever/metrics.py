"""Retrieval metrics with per-query values, bootstrap confidence intervals and paired tests.

Metric names follow BEIR (``NDCG@10``, ``MAP@10``, ``Recall@100``, ``P@10``, ``MRR@10``) and the
numbers are the ones ``pytrec_eval`` (trec_eval) computes, which is also what BEIR's
``EvaluateRetrieval.evaluate`` returns. We call ``pytrec_eval`` directly rather than through
BEIR 2.2.0 because BEIR's wrapper (a) averages over the queries present in the run only, so a query
the retriever returned nothing for silently leaves the mean, (b) removes documents whose id equals
the query id from the caller's run, in place, (c) rounds to five decimals, (d) returns no
per-query values, and (e) its ``MRR@k`` sorts ties by insertion order and averages over all qrels
queries, unlike (a). See :func:`evaluate_run` for the conventions used here.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pytrec_eval

logger = logging.getLogger(__name__)

Qrels = Mapping[str, Mapping[str, int]]
Run = Mapping[str, Mapping[str, float]]

DEFAULT_K: tuple[int, ...] = (1, 3, 5, 10, 100)
MRR_CUTOFF = 10
MRR_KEY = f"MRR@{MRR_CUTOFF}"
# Elements drawn per chunk when resampling, to bound memory on large query sets (MS MARCO dev).
_CHUNK_ELEMENTS = 2_000_000


def metric_names(k_values: Sequence[int] = DEFAULT_K) -> list[str]:
    """Keys of the aggregate dict returned by :func:`evaluate_run`, in a stable order."""
    ks = _check_k(k_values)
    names = [f"{prefix}@{k}" for prefix in ("NDCG", "MAP", "Recall", "P") for k in ks]
    return [*names, MRR_KEY]


def _check_k(k_values: Sequence[int]) -> list[int]:
    ks = sorted({int(k) for k in k_values})
    if not ks or ks[0] < 1 or any(int(k) != k for k in k_values):
        raise ValueError(f"k_values must be positive integers, got {list(k_values)!r}")
    return ks


def rank_order(doc_scores: Mapping[str, float]) -> list[str]:
    """Document ids in trec_eval's ranking order: score descending, ties by doc id descending.

    The doc-id comparison is a plain string (byte-wise) one, so ``"9"`` ranks above ``"10"``.
    """
    return sorted(doc_scores, key=lambda d: (doc_scores[d], d), reverse=True)


def _clean_run(run: Run, qrels: Qrels, ignore_identical_ids: bool) -> dict[str, dict[str, float]]:
    """Copy of ``run`` restricted to qrels queries, with float scores; the input is not changed."""
    clean: dict[str, dict[str, float]] = {}
    identical = 0
    extra = 0
    for qid, docs in run.items():
        if qid not in qrels:
            extra += 1
            continue
        row: dict[str, float] = {}
        for did, score in docs.items():
            value = float(score)
            if not math.isfinite(value):
                raise ValueError(f"run score for query {qid!r}, doc {did!r} is {value}")
            if did == qid:
                identical += 1
                if ignore_identical_ids:
                    continue
            row[did] = value
        clean[qid] = row
    if extra:
        logger.info("ignored %d run queries that have no qrels", extra)
    if identical:
        logger.warning(
            "%d retrieved docs have the same id as their query; %s",
            identical,
            "removed (ignore_identical_ids=True)" if ignore_identical_ids else "kept",
        )
    return clean


def evaluate_run(
    qrels: Qrels,
    run: Run,
    k_values: Sequence[int] = DEFAULT_K,
    *,
    ignore_identical_ids: bool = False,
) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """Score ``run`` against ``qrels``: ``(aggregate, per_query)``, all values fractions in [0, 1].

    ``aggregate`` maps BEIR's names (``NDCG@k``, ``MAP@k``, ``Recall@k``, ``P@k`` for every k, and
    ``MRR@10``) to the mean over queries; ``per_query`` maps the same names to ``{qid: value}``.

    Conventions:

    - **Every qrels query counts.** A qrels query absent from the run (or with an empty ranking)
      scores 0 on every metric and stays in the denominator. BEIR 2.2.0's ``evaluate`` instead
      drops absent queries from the mean, which inflates scores of a retriever that fails on some
      queries. Queries that are in the run but not in qrels are ignored. A qrels query with no
      document of relevance >= 1 scores 0 (trec_eval's rule), as in BEIR.
    - **Ties** are broken as trec_eval does: equal scores are ordered by doc id descending
      (string comparison), whatever the dict order; see :func:`rank_order`.
    - **MRR@10** is trec_eval's ``recip_rank`` on each ranking cut to its top 10 in that same
      order, so a first relevant doc below rank 10 gives 0.
    - **Identical ids.** BEIR by default deletes any retrieved doc whose id equals the query id
      (meant for ArguAna/Quora-style sets where a query is itself a corpus document). Here such
      docs are kept by default, because in the paper's datasets query and corpus ids are separate
      namespaces that can collide by accident; pass ``ignore_identical_ids=True`` to copy BEIR.
      Either way the count is logged and the caller's run is never modified.
    - Relevance >= 1 counts as relevant for Recall, P, MAP and MRR; nDCG uses the graded
      relevance as gain with a ``log2(rank + 1)`` discount. No rounding is applied.
    """
    ks = _check_k(k_values)
    if not qrels:
        raise ValueError("qrels is empty")
    qrels_int = {qid: {did: int(rel) for did, rel in docs.items()} for qid, docs in qrels.items()}
    clean = _clean_run(run, qrels_int, ignore_identical_ids)

    cut = ",".join(str(k) for k in ks)
    measures = {f"ndcg_cut.{cut}", f"map_cut.{cut}", f"recall.{cut}", f"P.{cut}"}
    scores = pytrec_eval.RelevanceEvaluator(qrels_int, measures).evaluate(clean)
    top = {qid: {d: docs[d] for d in rank_order(docs)[:MRR_CUTOFF]} for qid, docs in clean.items()}
    rr = pytrec_eval.RelevanceEvaluator(qrels_int, {"recip_rank"}).evaluate(top)

    sources = [("NDCG", "ndcg_cut"), ("MAP", "map_cut"), ("Recall", "recall"), ("P", "P")]
    per_query: dict[str, dict[str, float]] = {}
    for name, trec in sources:
        for k in ks:
            key = f"{trec}_{k}"
            per_query[f"{name}@{k}"] = {
                qid: float(scores[qid][key]) if qid in scores else 0.0 for qid in qrels_int
            }
    per_query[MRR_KEY] = {
        qid: float(rr[qid]["recip_rank"]) if qid in rr else 0.0 for qid in qrels_int
    }

    missing = [qid for qid in qrels_int if qid not in clean]
    if missing:
        logger.warning(
            "%d of %d qrels queries are absent from the run; they score 0 (e.g. %s)",
            len(missing),
            len(qrels_int),
            ", ".join(missing[:5]),
        )
    n = len(qrels_int)
    aggregate = {name: math.fsum(values.values()) / n for name, values in per_query.items()}
    return aggregate, per_query


def _finite_array(values: Sequence[float], what: str) -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{what}: need a non-empty 1-d sequence of numbers")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{what}: values must be finite")
    return arr


def _resampled_means(values: np.ndarray, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Means of ``n_resamples`` resamples (with replacement) of ``values``, drawn in chunks."""
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    n = values.size
    rows = max(1, _CHUNK_ELEMENTS // n)
    out = np.empty(n_resamples)
    for start in range(0, n_resamples, rows):
        stop = min(start + rows, n_resamples)
        idx = rng.integers(0, n, size=(stop - start, n))
        out[start:stop] = values[idx].mean(axis=1)
    return out


def bootstrap_ci(
    values: Sequence[float] | Mapping[str, float], n_resamples: int = 10000, alpha: float = 0.05,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Mean of per-query ``values`` and its percentile-bootstrap ``1 - alpha`` CI: (mean, lo, hi).

    Queries are resampled with replacement using ``numpy.random.default_rng(seed)``. A mapping
    (query id -> value) is taken in query-id order, so the same result file gives the same CI
    whatever order its dict was built in.
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if isinstance(values, Mapping):
        values = [values[q] for q in sorted(values)]
    arr = _finite_array(values, "bootstrap_ci")
    means = _resampled_means(arr, n_resamples, np.random.default_rng(seed))
    low, high = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return float(arr.mean()), float(low), float(high)


def paired_bootstrap(
    a: Mapping[str, float],
    b: Mapping[str, float],
    n_resamples: int = 10000,
    seed: int = 0,
    alpha: float = 0.05,
) -> dict[str, Any]:
    """Paired bootstrap test of per-query values of system ``a`` against system ``b``.

    Queries are resampled jointly (one index draw serves both systems), so the test works on the
    per-query differences ``d = a - b``. Returns ``mean_diff`` (a - b), ``ci_low``/``ci_high``
    (percentile CI of the mean difference at level ``1 - alpha``), ``p_value``, ``n_queries`` and
    ``n_resamples``.

    The two-sided p-value uses the shift method: the bootstrap means ``d*`` are centred on the
    observed mean ``dbar`` to mimic the null of no difference, and
    ``p = (1 + #{|d* - dbar| >= |dbar|}) / (1 + n_resamples)``. The +1 keeps p above zero (the
    smallest p reportable is ``1 / (1 + n_resamples)``); identical systems give p = 1.

    Raises ``ValueError`` naming the query ids that are not in both dicts.
    """
    only_a = sorted(set(a) - set(b))
    only_b = sorted(set(b) - set(a))
    if only_a or only_b:
        parts = []
        for label, ids in (("missing from b", only_a), ("missing from a", only_b)):
            if ids:
                shown = ", ".join(ids[:10]) + (f" (+{len(ids) - 10} more)" if len(ids) > 10 else "")
                parts.append(f"{len(ids)} {label}: {shown}")
        raise ValueError("paired_bootstrap needs the same query ids; " + "; ".join(parts))
    qids = sorted(a)
    diff = _finite_array([float(a[q]) - float(b[q]) for q in qids], "paired_bootstrap")
    means = _resampled_means(diff, n_resamples, np.random.default_rng(seed))
    dbar = float(diff.mean())
    low, high = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    # A tiny tolerance so that float noise in equal means does not count as "less extreme".
    tol = 1e-12 * max(1.0, abs(dbar))
    extreme = int(np.count_nonzero(np.abs(means - dbar) >= abs(dbar) - tol))
    return {
        "mean_diff": dbar,
        "ci_low": float(low),
        "ci_high": float(high),
        "p_value": (1 + extreme) / (1 + n_resamples),
        "n_queries": len(qids),
        "n_resamples": n_resamples,
    }


def difference_x100(test: Mapping[str, Any]) -> dict[str, Any]:
    """A :func:`paired_bootstrap` result as reported in tables and benchmark files: the mean
    difference and its CI x 100 (two decimals) and p (four)."""
    return {"delta": round(100 * test["mean_diff"], 2),
            "ci95": [round(100 * test["ci_low"], 2), round(100 * test["ci_high"], 2)],
            "p_value": round(test["p_value"], 4)}

def seed_mean_difference(
    pairs: Sequence[tuple[Mapping[str, float], Mapping[str, float]]],
) -> dict[str, float]:
    """Per query, the mean over seeds of ``a - b``: one ``(a, b)`` pair of per-query values per
    seed (a model and the one it is compared with, e.g. stage 2 and the stage 1 it was trained
    from). Every pair must hold the same queries. Resampling these means with
    :func:`paired_bootstrap` (against zeros) averages the seeds' noise before the queries'."""
    if not pairs:
        raise ValueError("seed_mean_difference needs at least one (a, b) pair")
    queries = sorted(pairs[0][0])
    for i, (a, b) in enumerate(pairs):
        if sorted(a) != queries or sorted(b) != queries:
            raise ValueError(f"seed_mean_difference: pair {i} holds other query ids than pair 0")
    return {q: sum(float(a[q]) - float(b[q]) for a, b in pairs) / len(pairs) for q in queries}
