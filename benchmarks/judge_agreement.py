"""Benchmark: how often an LLM judge prefers the labelled-relevant passage of a pair.

    python benchmarks/judge_agreement.py [--pairs 40] [--llm-model qwen0.5b] [--judge-mode logprobs]

Pairs come from SciFact's train split and the stage-1 retrieval file
(generated/scifact/retrieval-minilm-sft.jsonl): for each of the first N queries with a labelled
relevant passage and a non-relevant one in its top 5, the relevant passage and the highest-ranked
non-relevant one. The judge sees them with the same prompt, truncation and order handling as
stage2/parse_comparison.py. Reported: the share of decided pairs where the judge prefers the
labelled passage (0.5 = chance), the same share for the stage-1 ranking, position bias, tokens
and time. Writes benchmarks/results/judge_agreement-<llm>-<mode>.json.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from syntriever.cli import parse_llm_cli, run
from syntriever.data import load_dataset
from syntriever.jsonl import write_json
from syntriever.judge import (
    ComparisonSettings,
    attach_texts,
    build_preferences,
    comparison_requests,
)
from syntriever.llm.runner import execute_requests
from syntriever.paths import file_safe
from syntriever.profiles import EMBEDDED, JUDGE
from syntriever.retrieval import load_retrieval, retrieval_path


def labelled_pairs(dataset: str, model: str, n: int) -> list[dict]:
    """Retrieval records cut to two passages: (relevant, non-relevant), in stage-1 rank order."""
    qrels = load_dataset(dataset, "train").qrels
    out = []
    for rec in attach_texts(load_retrieval(retrieval_path(dataset, model)), dataset, 5):
        top = list(zip(rec["doc_ids"][:5], rec["texts"][:5], strict=False))
        rel = [(d, t) for d, t in top if qrels[rec["query_id"]].get(d, 0) > 0]
        non = [(d, t) for d, t in top if qrels[rec["query_id"]].get(d, 0) <= 0]
        if not rel or not non:
            continue
        pair = sorted([rel[0], non[0]], key=lambda dt: rec["doc_ids"].index(dt[0]))
        out.append({"query_id": rec["query_id"], "query": rec["query"], "doc_ids": [d for d, _ in pair],
                    "scores": [0.0, 0.0], "texts": [t for _, t in pair], "relevant": rel[0][0]})
        if len(out) == n:
            break
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--dataset", default="scifact")
    parser.add_argument("--model", default="minilm-sft", help="stage-1 model of the retrieval file")
    parser.add_argument("--pairs", type=int, default=40)
    parser.add_argument("--judge-mode", choices=["text", "logprobs"], default="logprobs")
    parser.add_argument("--judge-max-chars", type=int, default=JUDGE[EMBEDDED]["max_chars"])
    args, config = parse_llm_cli(parser, local_concurrency=2)
    records = labelled_pairs(args.dataset, args.model, args.pairs)
    settings = ComparisonSettings(k=2, judge_mode=args.judge_mode, max_chars=args.judge_max_chars)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        requests = comparison_requests(records, config, settings)
        results, _ = execute_requests(config, Path(tmp), "judge", requests, desc="judge agreement")
    seconds = time.perf_counter() - start
    if results is None:
        return
    triples, summary = build_preferences(records, results, config, settings)
    relevant = {r["query_id"]: r["relevant"] for r in records}
    judge_right = sum(t["winner_id"] == relevant[t["query_id"]] for t in triples)
    stage1_right = sum(r["doc_ids"][0] == r["relevant"] for r in records)
    report = {
        "dataset": args.dataset, "retrieval_model": args.model, "pairs": len(records),
        "decided": len(triples), "judge_prefers_relevant": judge_right,
        "judge_accuracy": round(judge_right / len(triples), 3) if triples else None,
        "stage1_ranks_relevant_first": stage1_right,
        "stage1_accuracy": round(stage1_right / len(records), 3),
        **{k: summary[k] for k in ("text_answers", "position_bias_rate", "score_inconsistent_share",
                                   "prompt_tokens", "completion_tokens") if k in summary},
        "seconds": round(seconds, 1), "llm": config.provenance(), "settings": vars(settings),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    name = f"judge_agreement-{file_safe(config.model_tag())}-{args.judge_mode}.json"
    write_json(Path(__file__).parent / "results" / name, report)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    run(main)
