"""Benchmark: stage 2 from one stage-1 model with each teacher, evaluated on one split.

    python benchmarks/stage2_teachers.py STAGE1_MODEL DATASET [--split dev]
        [--teachers oracle,identity,judge,judge-confident,oracle-flip-4pct,...] [--pairs-from minilm-sft]
        [--loss pl] [--top-k K] [--max-seq-length N] [--batch-size N] [--epochs N] [--seed N]

For each teacher (syntriever/teachers.py) trains stage 2 from STAGE1_MODEL over the same judged
pairs (`train_stage2.py STAGE1_MODEL DATASET --teacher T --pairs-from P`), evaluates it
(`evaluate.py NAME DATASET --split S`) and the stage-1 model, and writes
benchmarks/results/stage2_teachers-<STAGE1_MODEL>-<DATASET>-<split>-<loss>[-top<K>][-seed<N>].json:
nDCG@10 with its 95% bootstrap CI, the paired bootstrap test against the stage-1 model, and each
teacher's report (pairs kept, judge and retrieval-order accuracy on the label-checkable pairs,
threshold). With --pairs-from another model, "the retrieval order" (identity, the reports) is
STAGE1_MODEL's own.

Resumable: a trained model (its card exists) is not trained again, a saved evaluation of the
weights now in a model's folder is not run again (a result that records another model fingerprint,
or was created before the model's card, is of another training run of that name and is evaluated
again; syntriever.evaluation.current_result); the JSON is rewritten after every teacher.
Choices are made on the dev split: a stage-1 model trained with the dev queries is refused there
(train it with `train_stage1.py ... --train-split train-nodev`).
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from syntriever.cli import (
    add_pairs_from,
    check_top_k,
    positive_float,
    positive_int,
    run,
    setup_logging,
    teacher_list,
)
from syntriever.data import DEV, TRAIN_NODEV
from syntriever.errors import UserError
from syntriever.evaluation import current_result
from syntriever.jsonl import write_json
from syntriever.llm.local import DEFAULT_JUDGE_PRESET
from syntriever.metrics import bootstrap_ci, difference_x100, paired_bootstrap
from syntriever.names import final_name, judge_suffix, model_dir, seed_suffix, top_k_suffix
from syntriever.paths import file_safe, portable
from syntriever.provenance import CARD_NAME, check_same_run
from syntriever.result_files import HEADLINE, result_path
from syntriever.stage2 import pairs_preferences, stage1_split
from syntriever.teachers import CONFIDENT, IDENTITY, JUDGE, ORACLE

ROOT = Path(__file__).resolve().parents[1]
logger = logging.getLogger("stage2_teachers")
DEFAULT_TEACHERS = (ORACLE, IDENTITY, JUDGE, CONFIDENT)


def step(args: list[str]) -> None:
    """Run one project script; a failure ends the benchmark with its command line."""
    command = [sys.executable, *args]
    logger.info("running: python %s", " ".join(args))
    if subprocess.run(command, cwd=ROOT).returncode != 0:
        raise UserError(f"`python {' '.join(args)}` failed; fix it and run this benchmark again")


def evaluated(name: str, dataset: str, split: str) -> dict[str, Any]:
    """The result of ``name`` on ``split``; evaluated now unless the saved result is of the
    weights now in the model's folder (syntriever.evaluation.current_result)."""
    record = current_result(name, dataset, split)
    if record is None:
        step(["evaluate.py", name, dataset, "--split", split])
        record = json.loads(result_path(dataset, name, split=split).read_text())
    return record


def row(record: dict[str, Any], base: dict[str, Any] | None) -> dict[str, Any]:
    """nDCG@10 (x100) with its CI, and the paired test against ``base``."""
    per_query = record["per_query"][HEADLINE]
    mean, low, high = bootstrap_ci(per_query)
    out: dict[str, Any] = {"model": record["model"], "ndcg10": round(100 * mean, 2),
                           "ci95": [round(100 * low, 2), round(100 * high, 2)],
                           "queries": record["num_queries"], "result_created": record["created"]}
    if base is not None:
        out["vs_stage1"] = difference_x100(paired_bootstrap(per_query, base["per_query"][HEADLINE]))
    return out


def check_card(card: dict[str, Any], path: Path, teacher: str, args: argparse.Namespace) -> None:
    """Refuse to reuse a trained model whose card records another teacher, loss, preferences file
    (that of ``--pairs-from``, else of the stage-1 model) or training setting than this run asks
    for (its folder is named by the teacher and loss only)."""
    recorded = card.get("settings", {})
    wanted = {"max_seq_length": args.max_seq_length, "batch_size": args.batch_size,
              "epochs": args.epochs, "seed": args.seed}
    differ = [f"{key} {recorded.get(key)} (not {value})" for key, value in wanted.items()
              if value is not None and recorded.get(key) != value]
    if card.get("teacher") != teacher or card.get("stage2_loss") != args.loss:
        differ.append(f"teacher/loss {card.get('teacher')}/{card.get('stage2_loss')}")
    if card.get("top_k") != args.top_k:
        differ.append(f"top-k {card.get('top_k')}")
    _, pairs = pairs_preferences(args.dataset, args.model, args.pairs_from, args.llm_model)  # as train_stage2
    if card.get("preferences_file") != portable(pairs.resolve()):
        differ.append(f"pairs {card.get('preferences_file')}")
    if differ:
        raise UserError(f"{path}: trained with {', '.join(differ)}; move that model away or run "
                        "this benchmark with the flags it was trained with")


def previous_report(out: Path, report: dict[str, Any]) -> dict[str, Any]:
    """The teacher rows of an earlier run of the same comparison (kept when this run covers
    other teachers); an earlier report made with other flags, or paired against a stage-1 result
    that differs from this run's (the model trained again), is refused, not overwritten."""
    if not out.is_file():
        return {}
    old = json.loads(out.read_text())
    same = ("stage1_model", "split", "pairs_from", "train_flags")
    check_same_run(out, old, {key: report[key] for key in same})
    then, now = old.get("stage1", {}), report["stage1"]
    if old.get("teachers") and (then.get("ndcg10"), then.get("ci95")) != (now["ndcg10"], now["ci95"]):
        raise UserError(f"{out}: its rows are paired against a stage 1 that scored {then.get('ndcg10')} "
                        f"(now {now['ndcg10']}: trained again?); move it away to start a new comparison")
    return dict(old.get("teachers", {}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("model", help="stage-1 model, e.g. minilm-labelled-L256-nodev")
    parser.add_argument("dataset")
    parser.add_argument("--split", choices=(DEV, "test"), default=DEV, help="evaluation split (default: dev)")
    parser.add_argument("--teachers", type=teacher_list, default=list(DEFAULT_TEACHERS),
                        help=f"comma-separated (default: {','.join(DEFAULT_TEACHERS)})")
    add_pairs_from(parser)
    parser.add_argument("--loss", choices=["pl", "bt"], default="pl")
    parser.add_argument("--top-k", type=positive_int, default=None, metavar="K",
                        help="every pair of the top K, not the judged ones (train_stage2.py --top-k)")
    parser.add_argument("--max-seq-length", type=positive_int, default=None)
    parser.add_argument("--batch-size", type=positive_int, default=None)
    parser.add_argument("--epochs", type=positive_float, default=None)
    parser.add_argument("--llm-model", default=DEFAULT_JUDGE_PRESET,
                        help="the judge whose answers give the pairs (default: the embedded judge, whose "
                        "answers are committed; another one names its own report file)")
    parser.add_argument("--seed", type=int, default=None,
                        help="stage 2's training seed (default: train_stage2.py's); names models and file")
    args = parser.parse_args()
    setup_logging()
    check_top_k(parser, args.teachers, args.top_k)
    if not seed_suffix(args.seed):  # the default seed: the same models, flags and file as without --seed
        args.seed = None
    folder = model_dir(file_safe(args.model), args.dataset)
    if not folder.is_dir():
        raise UserError(f"{folder}: stage-1 model not found; train it with `python train_stage1.py ...`")
    train_split = stage1_split(args.model, folder)
    if args.split == DEV and train_split != TRAIN_NODEV:
        raise UserError(f"{args.model!r} was trained on {train_split!r}, which holds the dev queries; "
                        f"evaluate on dev only a model trained with `--train-split {TRAIN_NODEV}`")
    flags = ["--loss", args.loss]
    judge = args.llm_model if judge_suffix(args.llm_model) else None
    for flag, value in (("--llm-model", judge), ("--pairs-from", args.pairs_from), ("--top-k", args.top_k),
                        ("--max-seq-length", args.max_seq_length),
                        ("--batch-size", args.batch_size), ("--epochs", args.epochs), ("--seed", args.seed)):
        if value is not None:
            flags += [flag, str(value)]
    out = ROOT / "benchmarks" / "results" / (
        f"stage2_teachers-{file_safe(args.model)}-{args.dataset}-{args.split}-{args.loss}"
        + top_k_suffix(args.top_k) + seed_suffix(args.seed) + judge_suffix(args.llm_model) + ".json")
    base = evaluated(args.model, args.dataset, args.split)
    report: dict[str, Any] = {
        "stage1_model": args.model, "dataset": args.dataset, "split": args.split,
        "stage2_train_split": train_split, "pairs_from": args.pairs_from or args.model,
        "train_flags": flags, "metric": f"{HEADLINE} x 100, 95% percentile bootstrap CI (10,000 "
        "resamples of queries); vs_stage1: paired bootstrap of per-query differences",
        "stage1": row(base, None), "teachers": {},
    }
    report["teachers"] = previous_report(out, report)
    for teacher in args.teachers:
        name = final_name(args.model, args.loss, teacher, nodev=train_split == TRAIN_NODEV, seed=args.seed,
                          top_k=args.top_k)
        card_path = model_dir(name, args.dataset) / CARD_NAME
        if not card_path.is_file():
            judge_flags = [] if judge else ["--llm-model", args.llm_model]  # not the environment's default
            step(["train_stage2.py", args.model, args.dataset, "--teacher", teacher, *flags, *judge_flags])
        card = json.loads(card_path.read_text())
        check_card(card, card_path, teacher, args)
        report["teachers"][teacher] = {
            **row(evaluated(name, args.dataset, args.split), base),
            "train_seconds": card.get("train_seconds"), "steps": card.get("steps"),
            "max_seq_length": card.get("settings", {}).get("max_seq_length"),
            "teacher_report": card.get("teacher_report"),
        }
        report["updated"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        write_json(out, report)
    summary = {t: (r["ndcg10"], r["vs_stage1"]["delta"], r["vs_stage1"]["ci95"])
               for t, r in report["teachers"].items()}
    print(json.dumps({"stage1": report["stage1"]["ndcg10"], "teachers (ndcg10, delta, ci)": summary}))
    print(f"wrote {out}")


if __name__ == "__main__":
    run(main)
