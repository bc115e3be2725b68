"""Benchmark: where each stage-2 teacher goes against the retrieval order, and how often labels
say it is right there. No training, no LLM request.

    python benchmarks/teacher_overrides.py STAGE1_MODEL DATASET [--pairs-from minilm-sft]
        [--teachers oracle,identity,judge,likelihood-retriever] [--top-k K]

Over the pairs stage 2 of STAGE1_MODEL would train on (its training split's queries, the judged
pairs of --pairs-from re-scored by STAGE1_MODEL, as ``train_stage2.py`` builds them), each
teacher's report (:func:`syntriever.teachers.teacher_report`) gives the pairs whose winner differs
from STAGE1_MODEL's own order (``teacher_overrides_order``), those of them with exactly one
labelled-relevant passage, and how many of those the teacher gets right. The identity teacher
overrides nothing, so stage 2 can learn only from the overrides; right minus wrong overrides on
the checkable pairs (``net_corrections_checkable``) is the part of the oracle's corrections a
teacher delivers. --top-k K: over every pair of the top K instead (teachers that need no pairwise
judge's answer). Writes benchmarks/results/teacher_overrides-<STAGE1_MODEL>-<DATASET>[-top<K>].json; the
rows of teachers an earlier run covered are kept, and a file made over other pairs is refused.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from syntriever.cli import add_pairs_from, check_top_k, positive_int, run, setup_logging, teacher_list
from syntriever.jsonl import read_json, write_json
from syntriever.llm.local import DEFAULT_JUDGE_PRESET
from syntriever.names import judge_suffix, top_k_suffix
from syntriever.paths import file_safe
from syntriever.provenance import check_same_run, command_line
from syntriever.stage2 import (
    compared_pairs,
    order_model_for,
    pairs_preferences,
    teacher_preferences,
    trained_stage1,
)
from syntriever.teachers import IDENTITY, JUDGE, ORACLE

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_TEACHERS = (ORACLE, IDENTITY, JUDGE)
KEYS = ("pairs_compared", "pairs_kept", "label_checkable_pairs", "teacher_kept_checkable_pairs",
        "teacher_accuracy_checkable", "order_accuracy_on_kept_checkable", "teacher_overrides_order",
        "teacher_overrides_order_checkable", "teacher_override_right_checkable")


def overrides(report: dict[str, Any]) -> dict[str, Any]:
    """The report's override fields and the net corrections on the checkable pairs."""
    right, total = report["teacher_override_right_checkable"], report["teacher_overrides_order_checkable"]
    return {**{key: report[key] for key in KEYS}, "net_corrections_checkable": right - (total - right)}


def earlier_rows(out: Path, split: str, pairs_model: str) -> dict[str, Any]:
    """The teacher rows an earlier run wrote to ``out``; refused when made over other pairs."""
    if not out.is_file():
        return {}
    old = read_json(out, "move it away; the next run writes a new one")
    check_same_run(out, old, {"split": split, "pairs_from": pairs_model})
    return dict(old.get("teachers", {}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("model", help="the stage-1 model stage 2 would train")
    parser.add_argument("dataset")
    add_pairs_from(parser)
    parser.add_argument("--top-k", type=positive_int, default=None, metavar="K",
                        help="every pair of the top K (train_stage2.py --top-k), not the judged pairs")
    parser.add_argument("--teachers", type=teacher_list, default=list(DEFAULT_TEACHERS),
                        help=f"comma-separated (default: {','.join(DEFAULT_TEACHERS)})")
    parser.add_argument("--llm-model", default=DEFAULT_JUDGE_PRESET,
                        help="the judge whose answers give the pairs (default: the embedded judge, whose "
                        "answers are committed; another one names its own report file)")
    args = parser.parse_args()
    check_top_k(parser, args.teachers, args.top_k)
    setup_logging()
    _, split = trained_stage1(args.model, args.dataset)
    pairs_model, preferences = pairs_preferences(args.dataset, args.model, args.pairs_from, args.llm_model)
    order_model = order_model_for(args.model, pairs_model, args.dataset)
    name = (f"teacher_overrides-{file_safe(args.model)}-{args.dataset}{top_k_suffix(args.top_k)}"
            f"{judge_suffix(args.llm_model)}.json")
    out = ROOT / "benchmarks" / "results" / name
    teachers = earlier_rows(out, split, pairs_model)
    compared = compared_pairs(args.dataset, preferences, pairs_model, split, order_model, args.top_k)
    for teacher in args.teachers:
        _, report = teacher_preferences(args.dataset, preferences, pairs_model, teacher, split,
                                        order_model=order_model, top_k=args.top_k, compared=compared)
        teachers[teacher] = overrides(report)
    write_json(out, {"stage1_model": args.model, "dataset": args.dataset, "split": split,
                     "pairs_from": pairs_model, "command": command_line(), "teachers": teachers})
    for teacher in args.teachers:
        row = teachers[teacher]
        print(f"{teacher}: overrides the order on {row['teacher_overrides_order']} of "
              f"{row['pairs_kept']} pairs; on the checkable ones right "
              f"{row['teacher_override_right_checkable']} of {row['teacher_overrides_order_checkable']} "
              f"(net {row['net_corrections_checkable']:+d})")
    print(f"wrote {out}")


if __name__ == "__main__":
    run(main)
