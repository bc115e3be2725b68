"""Benchmark: what the committed stage-2 judge answers say so far, without calling the LLM.

    python benchmarks/judge_answers.py [--dataset scifact] [--model minilm-sft] [--llm-model qwen1.5b]
        [--compare-top-k 3] [--judge-max-chars 600]

Reads the committed compact answers of stage2/parse_comparison.py's embedded defaults (log-prob
judge over both orders) and the committed retrieval file, keeps the queries whose requests are
all answered, and reports the comparisons summary on them (decided/unparseable pairs, position
bias, per-order score inconsistency, tokens) plus, over the pairs with exactly one
labelled-relevant passage, how often the judge prefers it and how often the stage-1 order puts it
first (syntriever/teachers.py's label check). Useful while the judge run is still going. Writes
benchmarks/results/judge_answers-<dataset>-<llm>.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from syntriever.cli import run
from syntriever.data import load_dataset
from syntriever.jsonl import write_json
from syntriever.judge import (
    ComparisonSettings,
    answers_path,
    attach_texts,
    build_preferences,
    candidate_pairs,
    comparison_dir,
    pair_id,
)
from syntriever.llm.config import LLMConfig
from syntriever.llm.local import DEFAULT_JUDGE_PRESET
from syntriever.llm.requests import load_results
from syntriever.profiles import EMBEDDED, JUDGE
from syntriever.retrieval import load_retrieval, retrieval_path

EMBEDDED_JUDGE = JUDGE[EMBEDDED]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--dataset", default="scifact")
    parser.add_argument("--model", default="minilm-sft", help="stage-1 model of the retrieval file")
    parser.add_argument("--llm-model", default=DEFAULT_JUDGE_PRESET)
    parser.add_argument("--compare-top-k", "--k", dest="compare_top_k", type=int,
                        default=EMBEDDED_JUDGE["k"])
    parser.add_argument("--judge-max-chars", type=int, default=EMBEDDED_JUDGE["max_chars"])
    args = parser.parse_args()
    settings = ComparisonSettings(k=args.compare_top_k, judge_mode="logprobs", max_chars=args.judge_max_chars)
    config = LLMConfig(backend="local", model=args.llm_model)
    answers = answers_path(comparison_dir(args.dataset, config, args.model), settings)
    results = load_results(answers)
    retrieved = load_retrieval(retrieval_path(args.dataset, args.model), args.model)
    records = attach_texts(retrieved, args.dataset, args.compare_top_k)
    pairs = candidate_pairs(args.compare_top_k)
    done = [rec for rec in records if all(
        pair_id(rec["query_id"], rec["doc_ids"][i], rec["doc_ids"][j], order) in results
        for i, j in pairs for order in ("ab", "ba"))]
    qrels = load_dataset(args.dataset, "train").qrels
    _, summary = build_preferences(done, results, config, settings, qrels)
    check = summary["label_check"]
    report = {
        "answers_file": str(answers.relative_to(answers.parents[3])), "answers": len(results),
        "queries_in_retrieval": len(records), "queries_all_answered": len(done),
        "pairs_with_one_labelled_passage": check["label_checkable_pairs"],
        "judge_accuracy": check["judge_accuracy_checkable"],
        "stage1_order_accuracy": check["order_accuracy_on_judged_checkable"], "summary": summary,
    }
    name = f"judge_answers-{args.dataset}-{config.model_tag()}.json"
    out = Path(__file__).resolve().parent / "results" / name
    write_json(out, report)
    print(json.dumps({k: v for k, v in report.items() if k != "summary"}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    run(main)
