"""Benchmark: would more voters make the query-likelihood teacher right more often? No training,
no LLM request.

    python benchmarks/teacher_votes.py STAGE1_MODEL DATASET [--pairs-from minilm-sft]

Over the pairs stage 2 of STAGE1_MODEL would train on (as ``benchmarks/teacher_overrides.py``
builds them, the committed query-likelihood scores as verdicts), each non-empty subset of five
signals votes by the sign of the sum of its members, each in units of its spread over the pairs, as
the ``likelihood-retriever`` teacher sums two of them (:func:`syntriever.teachers.teacher_winners`;
the run checks that its subset "likelihood+order" picks what that teacher picks): the query
likelihood (A's minus B's), STAGE1_MODEL's score gap (its order), BM25's score gap, the zero-shot
encoder's score gap, and the pairwise judge's order-averaged margin (0 where it gave none). A sum
of 0 picks nothing (as the teacher drops a tie). Per subset, on the pairs with exactly one
labelled-relevant passage: how often it picks that passage, how often it overrides
STAGE1_MODEL's order, and right minus wrong overrides (net corrections; the oracle's is the number
of pairs the order gets wrong). The dev split's ``oracle-flip-<P>pct`` rows (README) tell how
accurate a teacher must be to gain.
Writes benchmarks/results/teacher_votes-<STAGE1_MODEL>-<DATASET>.json.
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

from syntriever.cli import add_pairs_from, run, setup_logging
from syntriever.data import load_dataset
from syntriever.encoders import load_encoder
from syntriever.errors import UserError
from syntriever.jsonl import write_json
from syntriever.llm.local import DEFAULT_JUDGE_PRESET
from syntriever.paths import file_safe
from syntriever.provenance import command_line
from syntriever.retrieval import bm25_search
from syntriever.stage2 import (
    compared_pairs,
    likelihood_pairs,
    order_model_for,
    pairs_preferences,
    rescore_pairs,
    trained_stage1,
)
from syntriever.teachers import LIKELIHOOD_RETRIEVER, spread, teacher_winners

ROOT = Path(__file__).resolve().parents[1]
ZERO_SHOT = "minilm"


def vote_rows(signals: dict[str, list[float]], truth: list[str | None]) -> dict[str, dict[str, float]]:
    """Per non-empty subset of ``signals`` (per pair, A's score minus B's; ``order`` among them),
    best first: its accuracy on the pairs whose ``truth`` ("a", "b") labels decide (a tie counts as
    not right), its ties there, its overrides of ``order`` (all pairs; checkable ones) and its net
    corrections there."""
    checkable = [i for i, t in enumerate(truth) if t is not None]
    if not checkable:
        raise UserError("no pair with exactly one labelled-relevant passage: nothing to score the votes on")
    order = [_pick(gap) for gap in signals["order"]]
    rows = {}
    for size in range(1, len(signals) + 1):
        for members in itertools.combinations(signals, size):
            picks = subset_picks(signals, members)
            overrides = [i for i in checkable if picks[i] is not None and picks[i] != order[i]]
            right_overrides = sum(picks[i] == truth[i] for i in overrides)
            rows["+".join(members)] = {
                "accuracy_checkable": round(sum(picks[i] == truth[i] for i in checkable) / len(checkable), 4),
                "ties_checkable": sum(picks[i] is None for i in checkable),
                "overrides_order": sum(p is not None and p != o for p, o in zip(picks, order, strict=True)),
                "overrides_order_checkable": len(overrides),
                "net_corrections_checkable": 2 * right_overrides - len(overrides)}
    return dict(sorted(rows.items(), key=lambda kv: -kv[1]["accuracy_checkable"]))


def subset_picks(signals: dict[str, list[float]], members: tuple[str, ...]) -> list[str | None]:
    """Per pair, what the sum of ``members``' signals, each in units of its spread, picks."""
    scales = {m: spread(signals[m]) for m in members}
    return [_pick(sum(signals[m][i] / scales[m] for m in members)) for i in range(len(signals[members[0]]))]


def _pick(total: float) -> str | None:
    """The passage a summed vote picks: "a" above 0, "b" below, None at 0."""
    return "a" if total > 0 else "b" if total < 0 else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("model", help="the stage-1 model stage 2 would train (its order is one voter)")
    parser.add_argument("dataset")
    add_pairs_from(parser)
    args = parser.parse_args()
    setup_logging()
    _, split = trained_stage1(args.model, args.dataset)
    pairs_model, preferences = pairs_preferences(args.dataset, args.model, args.pairs_from,
                                                 DEFAULT_JUDGE_PRESET)
    compared = compared_pairs(args.dataset, preferences, pairs_model, split,
                              order_model_for(args.model, pairs_model, args.dataset))
    # the verdicts the teacher decides on; refused, with the command, where a pair has no score
    scored, record = likelihood_pairs(compared, LIKELIHOOD_RETRIEVER, preferences, pairs_model, args.dataset)
    pairs = list(zip(compared.pairs, scored, strict=True))
    zero_shot = rescore_pairs([p for p, _ in pairs], load_encoder(ZERO_SHOT, args.dataset))
    data = load_dataset(args.dataset, split)
    bm25, _ = bm25_search(data.corpus, {p.query_id: p.query for p, _ in pairs}, k=len(data.corpus))
    signals = {
        "likelihood": [q.margin for _, q in pairs],
        "order": [p.retrieval_scores[0] - p.retrieval_scores[1] for p, _ in pairs],
        "bm25": [bm25[p.query_id].get(p.ids[0], 0.0) - bm25[p.query_id].get(p.ids[1], 0.0) for p, _ in pairs],
        "zero_shot": [z.retrieval_scores[0] - z.retrieval_scores[1] for z in zero_shot],
        "pairwise_judge": [p.margin or 0.0 for p, _ in pairs],
    }
    truth = [p.checkable_truth(compared.qrels) for p, _ in pairs]
    rows = vote_rows(signals, truth)
    teacher, _ = teacher_winners([q for _, q in pairs], LIKELIHOOD_RETRIEVER, compared.qrels)
    vote = subset_picks(signals, ("likelihood", "order"))
    if teacher != vote:
        raise UserError(f"the vote likelihood+order differs from teacher {LIKELIHOOD_RETRIEVER} on "
                        f"{sum(t != v for t, v in zip(teacher, vote, strict=True))} pairs")
    checkable = sum(t is not None for t in truth)
    out = ROOT / "benchmarks" / "results" / f"teacher_votes-{file_safe(args.model)}-{args.dataset}.json"
    write_json(out, {"stage1_model": args.model, "dataset": args.dataset, "split": split,
                     "pairs_from": pairs_model, "likelihood_file": record["likelihood_file"],
                     "zero_shot": ZERO_SHOT, "pairs": len(pairs), "label_checkable_pairs": checkable,
                     "command": command_line(),
                     "subsets": rows})
    for name, row in list(rows.items())[:8]:
        print(f"{name}: right on {row['accuracy_checkable']:.1%} of {checkable} checkable pairs, "
              f"net corrections {row['net_corrections_checkable']:+d}")
    print(f"wrote {out}")


if __name__ == "__main__":
    run(main)
