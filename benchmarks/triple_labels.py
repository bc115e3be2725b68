"""Benchmark: which stage-2 triples pull an unlabelled passage toward its query, per loss.

    python benchmarks/triple_labels.py [--dataset scifact] [--preferences FILE]

Partial Plackett-Luce (the paper) ranks ``c+`` first and ``c-`` second among the in-batch
passages, so it raises both passages of a triple above the other queries' passages;
Bradley-Terry only orders ``c+`` over ``c-``. Over the preference triples of stage 2 this counts
how often the winner and the loser are labelled relevant in the train qrels (exactly as the
oracle teacher would see them), i.e. how often PL's second term pulls a passage the labels call
non-relevant toward the query. Writes benchmarks/results/triple_labels-<dataset>.json.
Rebuild the (git-ignored) preferences file first with ``stage2/parse_comparison.py`` (0 requests
with the committed answers).
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

from syntriever.cli import run
from syntriever.data import load_dataset
from syntriever.jsonl import read_jsonl_numbered, write_json

LABEL = {True: "labelled", False: "unlabelled"}
ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PREFERENCES = "generated/{dataset}/comparison-v1-qwen1.5b-minilm-sft/{dataset}_preferences.jsonl"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--dataset", default="scifact")
    parser.add_argument("--preferences", type=Path, default=None)
    args = parser.parse_args()
    path = args.preferences or ROOT / DEFAULT_PREFERENCES.format(dataset=args.dataset)
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
    out = ROOT / "benchmarks" / "results" / f"triple_labels-{args.dataset}.json"
    write_json(out, report)
    print(report)


if __name__ == "__main__":
    run(main)
