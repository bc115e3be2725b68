"""Benchmark: how often an LLM judge prefers the labelled-relevant passage of a pair.

    python benchmarks/judge_agreement.py [--pairs 40] [--llm-model qwen1.5b] [--judge-mode logprobs]
        [--judge-max-chars 600,1500]

Pairs come from SciFact's train split and the stage-1 retrieval file
(generated/scifact/retrieval-minilm-sft.jsonl): for each of the first N queries with a labelled
relevant passage and a non-relevant one in its top 5, the relevant passage and the highest-ranked
non-relevant one. The judge sees them with the same prompt, truncation and order handling as
stage2/parse_comparison.py. Reported: the share of decided pairs where the judge prefers the
labelled passage (0.5 = chance), the same share for the stage-1 ranking, position bias, tokens
and time. Writes benchmarks/results/judge_agreement-<llm>-<mode>.json.

Several passage lengths (``--judge-max-chars 600,1500``; 0 = whole passages) ask the judge about the
same pairs once per length and add a paired comparison of the first two lengths: pairs right under
both, under one only, under neither, and the exact McNemar p-value of the disagreements. The file
then is ``judge_agreement-<llm>-<mode>-chars<A>-<B>.json`` (``whole`` for 0; a single length other
than the default: ``...-chars<A>.json``); its top-level fields are the first length's, ``lengths``
holds each.

Without ``--llm-model`` the judge is the one ``stage2/parse_comparison.py`` would use: the embedded
judge, or the remote default where an API key or base URL is set.

Resumable: the judge's answers are kept per setting under
``$SYNTRIEVER_CACHE/benchmarks/judge_agreement/``; the same command again sends only the requests
that have no answer yet (``seconds`` and ``requests_per_s`` then cover this run's requests).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from scipy.stats import binomtest

from syntriever import prompts
from syntriever.cli import parse_llm_cli, run
from syntriever.data import load_dataset
from syntriever.jsonl import write_json
from syntriever.judge import (
    ComparisonSettings,
    attach_texts,
    build_preferences,
    comparison_requests,
)
from syntriever.llm.config import LLMConfig
from syntriever.llm.local import DEFAULT_JUDGE_PRESET
from syntriever.llm.runner import execute_requests
from syntriever.paths import cache_root, file_safe
from syntriever.profiles import EMBEDDED, JUDGE
from syntriever.retrieval import load_retrieval, retrieval_path


def labelled_pairs(dataset: str, model: str, n: int) -> list[dict]:
    """Retrieval records cut to two passages: (relevant, non-relevant), in stage-1 rank order."""
    qrels = load_dataset(dataset, "train").qrels
    out = []
    for rec in attach_texts(load_retrieval(retrieval_path(dataset, model), model), dataset, 5):
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


def parse_lengths(value: str) -> list[int | None]:
    """``600,1500`` -> [600, 1500]; 0 means whole passages (None)."""
    try:
        lengths = [int(v) for v in value.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"comma-separated integers, got {value!r}") from None
    if any(n < 0 for n in lengths) or len(set(lengths)) != len(lengths):
        raise argparse.ArgumentTypeError(f"distinct non-negative integers, got {value!r}")
    return [n or None for n in lengths]


def judge_run(
    records: list[dict], config: LLMConfig, settings: ComparisonSettings, folder: Path
) -> dict[str, Any] | None:
    """Ask the judge about ``records`` under ``settings`` (answers kept in ``folder``): accuracy,
    bias, tokens, this run's time, per-pair verdicts."""
    start = time.perf_counter()
    folder.mkdir(parents=True, exist_ok=True)
    requests = comparison_requests(records, config, settings)
    desc = f"judge agreement, {settings.max_chars or 'whole'} chars"
    results, sent = execute_requests(config, folder, "judge", requests, desc=desc)
    if results is None:
        return None
    seconds = time.perf_counter() - start
    triples, summary = build_preferences(records, results, config, settings)
    relevant = {r["query_id"]: r["relevant"] for r in records}
    right = {t["query_id"]: t["winner_id"] == relevant[t["query_id"]] for t in triples}
    return {
        "max_chars": settings.max_chars, "decided": len(triples),
        "judge_prefers_relevant": sum(right.values()),
        "judge_accuracy": round(sum(right.values()) / len(triples), 3) if triples else None,
        **{k: summary[k] for k in ("text_answers", "position_bias_rate", "score_inconsistent_share",
                                   "prompt_tokens", "completion_tokens") if k in summary},
        "sent_this_run": sent.requests, "seconds": round(seconds, 1),
        "requests_per_s": round(sent.requests / seconds, 4) if sent.requests else None,
        "right_by_query": right,
    }


def paired(a: dict[str, bool], b: dict[str, bool]) -> dict[str, Any]:
    """Pairs decided under both runs: right under both, one only, neither; exact McNemar p."""
    both = [q for q in a if q in b]
    only_a = sum(a[q] and not b[q] for q in both)
    only_b = sum(b[q] and not a[q] for q in both)
    disagree = only_a + only_b
    return {"pairs": len(both), "both_right": sum(a[q] and b[q] for q in both), "only_first_right": only_a,
            "only_second_right": only_b, "both_wrong": sum(not a[q] and not b[q] for q in both),
            "mcnemar_exact_p": round(binomtest(only_a, disagree).pvalue, 4) if disagree else 1.0}


def result_name(model_tag: str, judge_mode: str, lengths: list[int | None]) -> str:
    """The result file's name: the historical one for the default length alone, else with the lengths."""
    name = f"judge_agreement-{file_safe(model_tag)}-{judge_mode}"
    if lengths != [JUDGE[EMBEDDED]["max_chars"]]:
        name += "-chars" + "-".join(str(n or "whole") for n in lengths)
    return f"{name}.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--dataset", default="scifact")
    parser.add_argument("--model", default="minilm-sft", help="stage-1 model of the retrieval file")
    parser.add_argument("--pairs", type=int, default=40)
    parser.add_argument("--judge-mode", choices=["text", "logprobs"], default="logprobs")
    parser.add_argument("--judge-max-chars", type=parse_lengths, default=[JUDGE[EMBEDDED]["max_chars"]],
                        help="passage length(s) in the judge's prompt, comma-separated; 0 = whole passages")
    args, config = parse_llm_cli(parser, local_concurrency=2, local_model=DEFAULT_JUDGE_PRESET)
    records = labelled_pairs(args.dataset, args.model, args.pairs)
    settings_per_length = [ComparisonSettings(k=2, judge_mode=args.judge_mode, max_chars=n)
                           for n in args.judge_max_chars]
    runs = []
    for settings in settings_per_length:
        folder = cache_root() / "benchmarks" / "judge_agreement" / file_safe(
            f"{prompts.COMPARE_VERSION}-{config.model_tag()}-{args.dataset}-{args.model}-{args.pairs}-{settings.tag()}")
        run_ = judge_run(records, config, settings, folder)
        if run_ is not None:  # None: a dry run, which only estimates
            runs.append(run_)
    if len(runs) < len(args.judge_max_chars):
        return
    stage1_right = sum(r["doc_ids"][0] == r["relevant"] for r in records)
    first = {k: v for k, v in runs[0].items() if k != "right_by_query"}
    report = {
        "dataset": args.dataset, "retrieval_model": args.model, "pairs": len(records), **first,
        "stage1_ranks_relevant_first": stage1_right,
        "stage1_accuracy": round(stage1_right / len(records), 3) if records else None,
        "llm": config.provenance(), "prompt_version": prompts.COMPARE_VERSION,
        "settings": vars(settings_per_length[0]),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if len(runs) > 1:
        report["lengths"] = runs
        report["paired_first_two"] = paired(runs[0]["right_by_query"], runs[1]["right_by_query"])
    name = result_name(config.model_tag(), args.judge_mode, args.judge_max_chars)
    write_json(Path(__file__).parent / "results" / name, report)
    print(json.dumps({k: v for k, v in report.items() if k != "lengths"}, indent=2))


if __name__ == "__main__":
    run(main)
