"""Benchmark: float32 vs bfloat16 autocast on this CPU, encoding and training, in one process.

    python benchmarks/precision.py [--passages 384] [--rounds 3] [--train-steps 6] [--no-ndcg]

1. Encoding: all-MiniLM-L6-v2 (minilm) encodes a fixed random sample of SciFact passages
   (max length 256, batch 32) in fp32 and in bf16 (``torch.autocast("cpu", torch.bfloat16)``);
   rounds alternate which precision goes first (round 0 warms up and is not counted). Reports
   passages/s, the per-round bf16/fp32 ratio and the cosine of each passage's bf16 embedding
   to its fp32 one (min, mean).
2. Training: the labelled-only stage-1 loss (InfoNCE on SciFact's labelled pairs, the
   fine-tuned baseline) for a few steps from the same minilm weights, fp32 vs the trainer's
   bf16 mode, alternating rounds; examples/s of the trainer's own timing.
3. nDCG@10 of minilm on SciFact test, the whole corpus encoded once each way (no cache).

Records the CPU model, its bfloat16-related flags, torch's version and the load average
(a background LLM job may share the CPU: both precisions see it, since runs alternate).
Writes benchmarks/results/precision.json (or --out).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from syntriever.cli import run, setup_logging
from syntriever.data import load_dataset, passage_text
from syntriever.encoders import load_encoder
from syntriever.jsonl import write_json
from syntriever.metrics import evaluate_run
from syntriever.precision import BF16_FLAGS, cpu_info, native_bf16, resolve_precision
from syntriever.retrieval import dense_search, encode
from syntriever.stage1 import Stage1Variant, build_examples, make_loss
from syntriever.training import TrainSettings, train

PRECISIONS = ("fp32", "bf16")
# flags recorded beside the two that decide (BF16_FLAGS): the AVX-512 / AMX context
CONTEXT_FLAGS = ("avx2", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "amx_tile", "amx_int8", "amx_fp16")


def alternating(rounds: int) -> list[tuple[int, str]]:
    """(round, precision) pairs: round 0 is a warm-up; later rounds swap which goes first."""
    order = []
    for round_no in range(rounds + 1):
        first = PRECISIONS if round_no % 2 else tuple(reversed(PRECISIONS))
        order += [(round_no, p) for p in first]
    return order


def machine() -> dict:
    model, flags = cpu_info()
    return {
        "cpu_model": model, "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "bf16_flags": sorted(set(BF16_FLAGS) & flags), "context_flags": sorted(set(CONTEXT_FLAGS) & flags),
        "native_bf16": native_bf16(), "auto_picks": resolve_precision("auto"),
        "torch": torch.__version__, "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
    }


def summarise(rates: dict[str, list[float]]) -> dict:
    ratios = [b / f for f, b in zip(rates["fp32"], rates["bf16"], strict=True)]
    return {
        "per_round": {p: [round(r, 3) for r in rates[p]] for p in PRECISIONS},
        "median": {p: round(statistics.median(rates[p]), 3) for p in PRECISIONS},
        "bf16_over_fp32_per_round": [round(r, 3) for r in ratios],
        "median_bf16_over_fp32": round(statistics.median(ratios), 3),
    }


def bench_encoding(args: argparse.Namespace) -> dict:
    corpus = load_dataset("scifact", "test").corpus
    ids = random.Random(0).sample(sorted(corpus), args.passages)
    texts = [passage_text(corpus[d]) for d in ids]
    model = load_encoder("minilm", max_seq_length=args.max_seq_length)
    model.eval()
    rates: dict[str, list[float]] = {p: [] for p in PRECISIONS}
    emb: dict[str, np.ndarray] = {}
    for round_no, used in alternating(args.rounds):
        start = time.perf_counter()
        emb[used] = encode(model, texts, "document", args.batch_size, progress=False, precision=used)
        rate = len(texts) / (time.perf_counter() - start)
        print(f"encode round {round_no} {used}: {rate:.1f} passages/s", flush=True)
        if round_no:
            rates[used].append(rate)
    cosine = (emb["fp32"] * emb["bf16"]).sum(axis=1)
    return {
        "passages": len(texts), "batch_size": args.batch_size, "max_seq_length": args.max_seq_length,
        "sample": "random.Random(0).sample(sorted SciFact corpus ids)", "passages_per_s": summarise(rates),
        "cosine_bf16_to_fp32": {"min": round(float(cosine.min()), 6), "mean": round(float(cosine.mean()), 6)},
    }


def bench_training(args: argparse.Namespace) -> dict:
    variant = Stage1Variant(use_cot=False, use_synthetic=False)
    examples, _ = build_examples(load_dataset("scifact", "train"), load_encoder("minilm"), variant, None)
    data = examples.select(range(args.train_steps * args.train_batch_size))
    rates: dict[str, list[float]] = {p: [] for p in PRECISIONS}
    losses: dict[str, list[float]] = {p: [] for p in PRECISIONS}
    for round_no, used in alternating(args.rounds):
        steps = args.train_steps if round_no else 1
        settings = TrainSettings(epochs=1.0, batch_size=args.train_batch_size, warmup_steps=0,
                                 max_steps=steps,
                                 max_seq_length=args.train_max_seq_length, bf16=used == "bf16")
        model = load_encoder("minilm")
        with tempfile.TemporaryDirectory() as tmp:
            card = train(model, data, make_loss(model, variant), settings, Path(tmp) / "model", {})
        rate = steps * args.train_batch_size / card["train_seconds"]
        print(f"train round {round_no} {used}: {rate:.2f} examples/s", flush=True)
        if round_no:
            rates[used].append(rate)
            losses[used].append(card["final_train_loss"])
    return {
        "loss": "labelled-only (SyntrieverClusterLoss on query, labelled passage; InfoNCE)",
        "steps": args.train_steps, "batch_size": args.train_batch_size,
        "max_seq_length": args.train_max_seq_length, "examples_per_s": summarise(rates),
        "final_train_loss": losses,
    }


def bench_ndcg(args: argparse.Namespace) -> dict:
    ds = load_dataset("scifact", "test")
    model = load_encoder("minilm")
    model.eval()
    out: dict = {"model": "minilm", "split": "test", "corpus": len(ds.corpus), "queries": len(ds.queries),
                 "max_seq_length": model.max_seq_length, "batch_size": args.batch_size}
    for used in ("bf16", "fp32"):
        load = os.getloadavg()[0]
        run, stats = dense_search(model, ds.corpus, ds.queries, 100, args.batch_size, use_cache=False,
                                  precision=used)
        ndcg = evaluate_run(ds.qrels, run)[0]["NDCG@10"]
        out[used] = {"ndcg@10": round(100 * ndcg, 2), "passages_per_s": stats.passages_per_s,
                     "encode_corpus_s": stats.timings["encode_corpus_s"], "load_average_1min_before": load}
        print(f"scifact {used}: nDCG@10 {100 * ndcg:.2f}, {stats.passages_per_s} passages/s", flush=True)
    out["ndcg@10_difference_bf16_minus_fp32"] = round(out["bf16"]["ndcg@10"] - out["fp32"]["ndcg@10"], 2)
    speed = out["bf16"]["passages_per_s"] / out["fp32"]["passages_per_s"]
    out["bf16_over_fp32_passages_per_s"] = round(speed, 3)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--passages", type=int, default=384)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-seq-length", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--train-steps", type=int, default=6)
    parser.add_argument("--train-batch-size", type=int, default=32)
    parser.add_argument("--train-max-seq-length", type=int, default=128)
    parser.add_argument("--no-ndcg", action="store_true", help="skip the two full SciFact encodings")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "precision.json")
    args = parser.parse_args()
    setup_logging()
    began, load_before = time.perf_counter(), os.getloadavg()
    report: dict = {"machine": machine(), "rounds": args.rounds}
    report["encoding"] = bench_encoding(args)
    report["training"] = bench_training(args)
    if not args.no_ndcg:
        report["scifact_ndcg"] = bench_ndcg(args)
    report["load_average"] = {"before": [round(x, 2) for x in load_before],
                              "after": [round(x, 2) for x in os.getloadavg()]}
    report["wall_s"] = round(time.perf_counter() - began, 1)
    report["created"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    write_json(args.out, report)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    run(main)
