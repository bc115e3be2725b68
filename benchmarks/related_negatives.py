"""Benchmark: how often a stage-1 hard negative restates its query, by where the negative comes from.

    python benchmarks/related_negatives.py [--synthetic FILE] [--split train-nodev]

Compares, on the same training queries, the LLM's own "irrelevant" passages of a synthesis run with
the negatives of `train_stage1.py --negatives related` (the synthetic positive of the most similar
other query of the split, syntriever.stage1.related_negatives, zero-shot MiniLM query embeddings).
Reports the share restating the query (content-word coverage >= 0.8), the verbatim share and the
median coverage. Writes benchmarks/results/related_negatives-<run>.json.
"""

import argparse
import json
import statistics
from pathlib import Path

from syntriever.cli import run, setup_logging
from syntriever.data import TRAIN_NODEV, load_dataset
from syntriever.encoders import load_encoder
from syntriever.jsonl import write_json
from syntriever.paths import ROOT, portable
from syntriever.stage1 import load_synthetic, related_negatives
from syntriever.synthesis_quality import RESTATING_COVERAGE, contains_query, coverage

V1 = ROOT / "generated" / "scifact" / "synthesis-v1-qwen0.5b" / "scifact_synthetic.jsonl"


def describe(queries: dict[str, str], negatives: dict[str, str]) -> dict[str, float]:
    cover = [coverage(queries[q], n) for q, n in negatives.items()]
    return {"negatives": len(cover),
            "restating_share": round(sum(c >= RESTATING_COVERAGE for c in cover) / len(cover), 4),
            "verbatim_share": round(sum(contains_query(queries[q], n) for q, n in negatives.items())
                                    / len(cover), 4),
            "median_coverage": round(statistics.median(cover), 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--synthetic", type=Path, default=V1)
    parser.add_argument("--dataset", default="scifact")
    parser.add_argument("--split", default=TRAIN_NODEV)
    args = parser.parse_args()
    setup_logging()
    train = load_dataset(args.dataset, args.split)
    synthetic = load_synthetic(args.synthetic)
    related = related_negatives(train, synthetic, load_encoder("minilm"))
    own = {q: synthetic[q]["negative"] for q in related if synthetic[q]["negative"].strip()}
    report = {"synthetic_file": portable(args.synthetic.resolve()), "dataset": args.dataset,
              "split": args.split, "llm_negatives": describe(train.queries, own) if own else None,
              "related_negatives": describe(train.queries, related)}
    out = Path(__file__).parent / "results" / f"related_negatives-{args.synthetic.parent.name}.json"
    write_json(out, report)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    run(main)
