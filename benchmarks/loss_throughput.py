"""Benchmark: training throughput of the Syntriever cluster loss vs MultipleNegativesRankingLoss.

    python benchmarks/loss_throughput.py [--steps 6] [--batch-size 32] [--max-seq-length 128] [--rounds 2]

Both losses train the same encoder (minilm) on the same five-column batches built from real
SciFact training pairs (query, labelled passage, and three passage-side columns drawn from the
corpus as stand-ins for the synthetic texts: at a fixed max length the cost is the same), with
the same sampler and seed, through the same sentence-transformers trainer. Rounds alternate the
two losses to spread machine noise. Writes benchmarks/results/loss_throughput.json.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from pathlib import Path

from datasets import Dataset
from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

from syntriever.cli import run, setup_logging
from syntriever.data import load_dataset
from syntriever.encoders import load_encoder
from syntriever.jsonl import write_json
from syntriever.losses import SyntrieverClusterLoss
from syntriever.training import TrainSettings, train


def five_columns(n: int) -> dict[str, list]:
    train_split = load_dataset("scifact", "train")
    corpus_ids = list(train_split.corpus)
    rng = random.Random(0)
    columns = ("query", "positive", "synthetic", "cot", "synthetic_negative", "label")
    rows: dict[str, list] = {k: [] for k in columns}
    for qid, docs in train_split.qrels.items():
        for did in docs:
            rows["query"].append(train_split.queries[qid])
            rows["positive"].append(train_split.passage_text(did))
            for column in ("synthetic", "cot", "synthetic_negative"):
                rows[column].append(train_split.passage_text(rng.choice(corpus_ids)))
            rows["label"].append(1)
            if len(rows["query"]) == n:
                return rows
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-seq-length", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    setup_logging()
    rows = five_columns(args.steps * args.batch_size)
    datasets = {
        "SyntrieverClusterLoss": Dataset.from_dict(rows),
        "MultipleNegativesRankingLoss": Dataset.from_dict({k: v for k, v in rows.items() if k != "label"}),
    }
    settings = TrainSettings(epochs=1.0, batch_size=args.batch_size, warmup_steps=0,
                             max_seq_length=args.max_seq_length, max_steps=args.steps)
    rates: dict[str, list[float]] = {name: [] for name in datasets}
    # round 0 warms caches and is not counted; later rounds alternate which loss goes first
    for round_no in range(args.rounds + 1):
        order = list(datasets) if round_no % 2 else list(reversed(datasets))
        for name in order:
            data = datasets[name]
            model = load_encoder("minilm")
            loss = (SyntrieverClusterLoss(model) if name == "SyntrieverClusterLoss"
                    else MultipleNegativesRankingLoss(model, scale=20.0))
            with tempfile.TemporaryDirectory() as tmp:
                start = time.perf_counter()
                train(model, data, loss, settings, Path(tmp) / "model", {})
                if round_no:
                    rates[name].append(args.steps * args.batch_size / (time.perf_counter() - start))
    names = ("SyntrieverClusterLoss", "MultipleNegativesRankingLoss")
    ours, mnrl = (statistics.median(rates[k]) for k in names)
    paired = [round(m / o - 1, 4) for o, m in zip(*(rates[k] for k in names), strict=True)]
    report = {
        "steps": args.steps, "batch_size": args.batch_size, "max_seq_length": args.max_seq_length,
        "columns": 5, "rounds": args.rounds, "examples_per_s": rates,
        "median_examples_per_s": {"SyntrieverClusterLoss": round(ours, 3),
                                  "MultipleNegativesRankingLoss": round(mnrl, 3)},
        "overhead": round(mnrl / ours - 1, 4),
        # rounds run back to back, so the machine's drift cancels within a round
        "overhead_per_round": paired,
        "median_overhead_per_round": round(statistics.median(paired), 4),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    write_json(Path(__file__).parent / "results" / "loss_throughput.json", report)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    run(main)
