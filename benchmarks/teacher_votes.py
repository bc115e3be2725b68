"""Benchmark: would more voters make the query-likelihood teacher right more often? No training,
no LLM request.

    python benchmarks/teacher_votes.py STAGE1_MODEL DATASET [--pairs-from minilm-sft]

Over the pairs stage 2 of STAGE1_MODEL would train on (as ``benchmarks/teacher_overrides.py``
builds them, the committed query-likelihood scores as verdicts), each non-empty subset of five
signals votes by the sign of the sum of its members, each in units of its spread over the pairs
(the ``likelihood-retriever`` rule, :data:`syntriever.teachers` ``judge-retriever``, is the subset
likelihood + order): the query likelihood (A's minus B's), STAGE1_MODEL's score gap (its order),
BM25's score gap, the zero-shot encoder's score gap, and the pairwise judge's order-averaged
margin. Per subset, on the pairs with exactly one labelled-relevant passage: how often it picks
that passage, how often it overrides STAGE1_MODEL's order, and right minus wrong overrides (net
corrections; the oracle's is the number of pairs the order gets wrong). The dev split's
``oracle-flip-<P>pct`` rows (README) tell how accurate a teacher must be to gain.
Writes benchmarks/results/teacher_votes-<STAGE1_MODEL>-<DATASET>.json.
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

from syntriever.cli import run, setup_logging
from syntriever.data import load_dataset
from syntriever.encoders import load_encoder
from syntriever.jsonl import write_json
from syntriever.likelihood import likelihood_path, load_likelihoods, with_likelihood
from syntriever.llm.local import DEFAULT_JUDGE_PRESET
from syntriever.paths import file_safe, portable
from syntriever.provenance import command_line
from syntriever.retrieval import bm25_search
from syntriever.stage2 import (
    compared_pairs,
    order_model_for,
    pairs_preferences,
    rescore_pairs,
    trained_stage1,
)
from syntriever.teachers import spread

ROOT = Path(__file__).resolve().parents[1]
ZERO_SHOT = "minilm"


def vote_rows(signals: dict[str, list[float]], truth: list[str | None]) -> dict[str, dict[str, float]]:
    """Per non-empty subset of ``signals`` (per pair, A's score minus B's; ``order`` among them),
    best first: its accuracy on the pairs whose ``truth`` ("a", "b") labels decide, its overrides
    of ``order`` (all pairs; checkable ones) and its net corrections there."""
    scaled = {name: [v / spread(values) for v in values] for name, values in signals.items()}
    checkable = [i for i, t in enumerate(truth) if t is not None]
    order_a = [gap > 0 for gap in signals["order"]]
    rows = {}
    for size in range(1, len(scaled) + 1):
        for members in itertools.combinations(scaled, size):
            picks_a = [sum(scaled[m][i] for m in members) > 0 for i in range(len(truth))]
            overrides = [i for i in checkable if picks_a[i] != order_a[i]]
            right_overrides = sum(picks_a[i] == (truth[i] == "a") for i in overrides)
            rows["+".join(members)] = {
                "accuracy_checkable": round(sum(picks_a[i] == (truth[i] == "a") for i in checkable)
                                            / len(checkable), 4),
                "overrides_order": sum(a != o for a, o in zip(picks_a, order_a, strict=True)),
                "overrides_order_checkable": len(overrides),
                "net_corrections_checkable": 2 * right_overrides - len(overrides)}
    return dict(sorted(rows.items(), key=lambda kv: -kv[1]["accuracy_checkable"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("model", help="the stage-1 model stage 2 would train (its order is one voter)")
    parser.add_argument("dataset")
    parser.add_argument("--pairs-from", default=None, metavar="MODEL",
                        help="stage-1 model whose judged pairs are used (default: MODEL)")
    args = parser.parse_args()
    setup_logging()
    _, split = trained_stage1(args.model, args.dataset)
    pairs_model, preferences = pairs_preferences(args.dataset, args.model, args.pairs_from,
                                                 DEFAULT_JUDGE_PRESET)
    compared = compared_pairs(args.dataset, preferences, pairs_model, split,
                              order_model_for(args.model, pairs_model, args.dataset))
    scores_file = likelihood_path(preferences.parent)
    scores, _ = load_likelihoods(scores_file)
    pairs = [(p, q) for p, q in zip(compared.pairs, with_likelihood(compared.pairs, scores), strict=True)
             if q.verdict.winner and p.margin is not None]
    zero_shot = rescore_pairs([p for p, _ in pairs], load_encoder(ZERO_SHOT, args.dataset))
    data = load_dataset(args.dataset, split)
    bm25, _ = bm25_search(data.corpus, {p.query_id: p.query for p, _ in pairs}, k=len(data.corpus))
    signals = {
        "likelihood": [q.margin for _, q in pairs],
        "order": [p.retrieval_scores[0] - p.retrieval_scores[1] for p, _ in pairs],
        "bm25": [bm25[p.query_id].get(p.ids[0], 0.0) - bm25[p.query_id].get(p.ids[1], 0.0) for p, _ in pairs],
        "zero_shot": [z.retrieval_scores[0] - z.retrieval_scores[1] for z in zero_shot],
        "pairwise_judge": [p.margin for p, _ in pairs],
    }
    truth = [p.checkable_truth(compared.qrels) for p, _ in pairs]
    rows = vote_rows(signals, truth)
    checkable = sum(t is not None for t in truth)
    out = ROOT / "benchmarks" / "results" / f"teacher_votes-{file_safe(args.model)}-{args.dataset}.json"
    write_json(out, {"stage1_model": args.model, "dataset": args.dataset, "split": split,
                     "pairs_from": pairs_model, "likelihood_file": portable(scores_file.resolve()),
                     "zero_shot": ZERO_SHOT, "pairs": len(pairs), "label_checkable_pairs": checkable,
                     "command": command_line(),
                     "subsets": rows})
    for name, row in list(rows.items())[:8]:
        print(f"{name}: right on {row['accuracy_checkable']:.1%} of {checkable} checkable pairs, "
              f"net corrections {row['net_corrections_checkable']:+d}")
    print(f"wrote {out}")


if __name__ == "__main__":
    run(main)
