"""Benchmark: which stage-2 triples pull an unlabelled passage toward its query, per loss.

    python benchmarks/triple_labels.py [--dataset scifact] [--preferences FILE]
        [--model STAGE1_MODEL [--pairs-from minilm-sft] [--batch-size 32]]

Partial Plackett-Luce (the paper) ranks ``c+`` first and ``c-`` second among the in-batch
passages, so it raises both passages of a triple above the other queries' passages;
Bradley-Terry only orders ``c+`` over ``c-``. Over the preference triples of stage 2 this counts
how often the winner and the loser are labelled relevant in the train qrels (exactly as the
oracle teacher would see them), i.e. how often PL's second term pulls a passage the labels call
non-relevant toward the query. Writes benchmarks/results/triple_labels-<dataset>.json.
Rebuild the (git-ignored) preferences file first with ``stage2/parse_comparison.py`` (0 requests
with the committed answers).

With ``--model``, it also measures which way each loss moves the loser at the start of stage 2
from that stage-1 model, for the judge's and the oracle's triples over the same pairs: the
triples are cut into batches of distinct queries (seeded, as the trainer's no-duplicates
sampler does), each loss's gradient with respect to the loser's embedding is taken by autograd
on the loss functions the trainer uses, and its first-order effect on cos(query, loser) is
``-g . (q - cos * c)``. Reported per teacher and loss: the share of triples whose loser a
gradient step moves toward its own query, overall and by the loser's label. At the embedding
level only (the encoder is shared, so a real step also moves the query and other passages).
The file then is ``triple_labels-<dataset>-<model>.json``.
"""

from __future__ import annotations

import argparse
import random
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sentence_transformers import SentenceTransformer

from syntriever.cli import run
from syntriever.data import load_dataset
from syntriever.encoders import open_encoder
from syntriever.jsonl import read_jsonl_numbered, write_json
from syntriever.losses import bradley_terry_loss, partial_plackett_luce_loss
from syntriever.paths import file_safe
from syntriever.retrieval import encode
from syntriever.stage2 import compared_pairs, stage1_split, teacher_preferences
from syntriever.teachers import JUDGE, ORACLE

LABEL = {True: "labelled", False: "unlabelled"}
ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PREFERENCES = "generated/{dataset}/comparison-v1-qwen1.5b-{pairs_from}/{dataset}_preferences.jsonl"


LOSSES: dict[str, Callable[..., torch.Tensor]] = {
    "pl": partial_plackett_luce_loss, "bt": bradley_terry_loss}


def distinct_query_batches(triples: list[dict[str, Any]], size: int, seed: int = 42) -> list[list[int]]:
    """Indices of ``triples`` shuffled and cut into batches of at most ``size`` with distinct queries
    (a triple whose query or a passage of it the open batch holds waits for the next one), as
    no-duplicates sampling does."""
    order = list(range(len(triples)))
    random.Random(seed).shuffle(order)
    batches: list[list[int]] = []
    while order:
        batch: list[int] = []
        seen: set[tuple[str, str]] = set()
        rest = []
        for i in order:
            t = triples[i]
            keys = {("q", t["query_id"]), ("d", t["winner_id"]), ("d", t["loser_id"])}
            if len(batch) < size and not keys & seen:
                batch.append(i)
                seen |= keys
            else:
                rest.append(i)
        batches.append(batch)
        order = rest
    return batches


def loser_pull(q: torch.Tensor, winner: torch.Tensor, loser: torch.Tensor,
               loss: Callable[..., torch.Tensor]) -> torch.Tensor:
    """Per row, the first-order change of cos(q_i, loser_i) under a gradient-descent step of
    ``loss`` on the loser embeddings (unit rows): ``-g_i . (q_i - cos_i * loser_i)``."""
    loser = loser.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(loss(q, winner, loser), loser)
    cos = (q * loser.detach()).sum(dim=1, keepdim=True)
    return -(grad * (q - cos * loser.detach())).sum(dim=1)


def embeddings(
    triples: list[dict[str, Any]], model: SentenceTransformer
) -> dict[tuple[str, str], np.ndarray]:
    """Each query (``("q", id)``) and passage (``("d", id)``) of ``triples``, encoded once."""
    queries = {("q", t["query_id"]): t["query"] for t in triples}
    texts = {("d", d): x for t in triples
             for d, x in ((t["winner_id"], t["winner"]), (t["loser_id"], t["loser"]))}
    q_emb = encode(model, list(queries.values()), "query")
    d_emb = encode(model, list(texts.values()), "document")
    return {**dict(zip(queries, q_emb, strict=True)), **dict(zip(texts, d_emb, strict=True))}


def loss_directions(
    triples: list[dict[str, Any]], emb: dict[tuple[str, str], np.ndarray], qrels: dict[str, dict[str, int]],
    batch_size: int,
) -> dict[str, Any]:
    """Per loss, how many losers a step moves toward their query, overall and by the loser's label
    (``emb``: :func:`embeddings` of these triples)."""
    labelled = [qrels.get(t["query_id"], {}).get(t["loser_id"], 0) >= 1 for t in triples]
    out: dict[str, Any] = {"triples": len(triples), "losers_labelled": sum(labelled)}
    for name, loss in LOSSES.items():
        toward = [False] * len(triples)
        for batch in distinct_query_batches(triples, batch_size):
            q, w, lo = (torch.from_numpy(np.stack([emb[kind, triples[i][key]] for i in batch]))
                        for kind, key in (("q", "query_id"), ("d", "winner_id"), ("d", "loser_id")))
            for i, pull in zip(batch, loser_pull(q, w, lo, loss).tolist(), strict=True):
                toward[i] = pull > 0
        by_label = {}
        for flag, label in ((True, "loser_labelled"), (False, "loser_unlabelled")):
            rows = [t for t, lab in zip(toward, labelled, strict=True) if lab == flag]
            by_label[label] = {"triples": len(rows), "pulled_toward_query": sum(rows)}
        out[name] = {"pulled_toward_query": sum(toward),
                     "share": round(sum(toward) / len(triples), 4) if triples else None,
                     **by_label}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--dataset", default="scifact")
    parser.add_argument("--preferences", type=Path, default=None)
    parser.add_argument("--model", help="stage-1 model: also measure which way PL and BT move the losers")
    parser.add_argument("--pairs-from", default="minilm-sft", help="stage-1 model whose pairs were judged")
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    path = args.preferences or ROOT / DEFAULT_PREFERENCES.format(dataset=args.dataset,
                                                                 pairs_from=file_safe(args.pairs_from))
    qrels = load_dataset(args.dataset, "train").qrels
    counts: Counter[str] = Counter()
    for _, triple in read_jsonl_numbered(path):
        relevant = {d for d, s in qrels.get(str(triple["query_id"]), {}).items() if s >= 1}
        winner, loser = triple["winner_id"] in relevant, triple["loser_id"] in relevant
        counts[f"winner_{LABEL[winner]}_loser_{LABEL[loser]}"] += 1
    total = sum(counts.values())
    report = {
        "preferences": str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path),
        "triples": total,
        "counts": dict(sorted(counts.items())),
        "shares": {k: round(v / total, 4) for k, v in sorted(counts.items())},
        "pl_second_place_unlabelled": round(
            sum(v for k, v in counts.items() if k.endswith("loser_unlabelled")) / total, 4),
        "both_pulled_unlabelled": round(counts["winner_unlabelled_loser_unlabelled"] / total, 4),
    }
    name = f"triple_labels-{args.dataset}"
    if args.model:
        model, source = open_encoder(args.model, args.dataset)
        split = stage1_split(args.model, Path(source))  # the split stage 2 from this model trains on
        report.update(model=args.model, pairs_from=args.pairs_from, split=split, batch_size=args.batch_size)
        compared = compared_pairs(args.dataset, path, args.pairs_from, split, model)
        taught = {teacher: teacher_preferences(args.dataset, path, args.pairs_from, teacher, split,
                                               order_model=model, compared=compared)[0]
                  for teacher in (JUDGE, ORACLE)}
        emb = embeddings([t for triples in taught.values() for t in triples], model)
        for teacher, triples in taught.items():
            report[f"loser_direction_{teacher}"] = loss_directions(triples, emb, qrels, args.batch_size)
        name += f"-{file_safe(args.model)}"
    out = ROOT / "benchmarks" / "results" / f"{name}.json"
    write_json(out, report)
    print(report)


if __name__ == "__main__":
    run(main)
