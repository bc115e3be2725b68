"""Stage 2, another judge (not in the paper): the query likelihood of each passage the judge compared.

    python stage2/score_likelihood.py MODEL DATASET [--pairs-from MODEL-sft] [--checkable-only]
        [--top-k K] [--llm-model qwen1.5b] [--max-chars 1500]

For the pairs the pairwise judge compared for MODEL (or for --pairs-from), restricted to the
queries of MODEL's training split, asks a local llama-server for log P(query | passage) of every
passage (syntriever/likelihood.py) and appends the scores to
generated/<dataset>/comparison-.../likelihood-<version>.jsonl beside the judge's answers; a
stopped run resumes where it stopped. `train_stage2.py MODEL DATASET --teacher likelihood...`
then decides the pairs on these scores (teachers `likelihood`, `likelihood-retriever`,
`likelihood-checkable`, `likelihood-retriever-checkable`,
`oracle-likelihood-retriever`).

--top-k K also scores the rest of the top K of the pairs model's retrieval (K = 5: the paper's 10
pairs per query, where the pairwise judge compared the top 3), query by query after the judged
passages, so that a stopped run leaves whole queries scored.

--checkable-only scores only the passages of the pairs with exactly one labelled-relevant passage
(the teachers' label-checkable pairs): what the `-checkable` controls need, at about 60% of the
requests on SciFact.

Keeps likelihood-<version>.summary.json: every run's requests, seconds and prompt tokens, and per
stage-1 model, on the label-checkable pairs whose passages are scored, how often the query
likelihood, the query likelihood with the retrieval score (the judge-retriever rule), MODEL's
retrieval order and the pairwise judge prefer the labelled-relevant passage.
"""

import argparse
from pathlib import Path
from typing import Any

from syntriever.cli import add_pairs_from, positive_int, run, setup_logging
from syntriever.jsonl import read_json, write_json
from syntriever.likelihood import (
    DEFAULT_MAX_CHARS,
    LikelihoodClient,
    likelihood_path,
    load_likelihoods,
    passages_of,
    score_passages,
    with_likelihood,
)
from syntriever.llm.local import DEFAULT_JUDGE_PRESET, LocalServer
from syntriever.paths import check_name, portable
from syntriever.prompts import LIKELIHOOD_VERSION
from syntriever.provenance import command_line
from syntriever.stage2 import compared_pairs, order_model_for, pairs_preferences, trained_stage1
from syntriever.teachers import JUDGE_CHECKABLE, LIKELIHOOD_CHECKABLE, LIKELIHOOD_RETRIEVER_CHECKABLE, teach

REPORT_KEYS = ("label_checkable_pairs", "teacher_kept_checkable_pairs", "teacher_accuracy_checkable",
               "order_accuracy_on_kept_checkable")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("model", help="the stage-1 model stage 2 will train (its order is the reports')")
    parser.add_argument("dataset")
    add_pairs_from(parser)
    parser.add_argument("--checkable-only", action="store_true",
                        help="only the pairs with exactly one labelled-relevant passage")
    parser.add_argument("--top-k", type=positive_int, default=None, metavar="K",
                        help="also score the rest of the top K of the pairs model's retrieval")
    parser.add_argument("--llm-model", default=DEFAULT_JUDGE_PRESET, help="embedded GGUF preset")
    parser.add_argument("--max-chars", type=int, default=DEFAULT_MAX_CHARS,
                        help=f"passage characters in the prompt (default {DEFAULT_MAX_CHARS}; 0 = whole)")
    args = parser.parse_args()
    setup_logging()
    check_name(args.dataset)
    if args.top_k is not None and args.checkable_only:
        parser.error("--top-k scores every passage of the top K; drop --checkable-only")
    _, split = trained_stage1(args.model, args.dataset)
    pairs_model, preferences = pairs_preferences(args.dataset, args.model, args.pairs_from, args.llm_model)
    order_model = order_model_for(args.model, pairs_model, args.dataset)
    compared = compared_pairs(args.dataset, preferences, pairs_model, split, order_model)
    pairs = compared.pairs
    if args.checkable_only:
        pairs = [p for p in pairs if p.checkable_truth(compared.qrels) is not None]
    out = likelihood_path(preferences.parent)
    if args.top_k is not None:  # after the judged pairs' passages, the rest of each query's top K
        top_k = compared_pairs(args.dataset, preferences, pairs_model, split, top_k=args.top_k)
        pairs = [*pairs, *top_k.pairs]
    with LocalServer(model=args.llm_model, parallel=1, ctx_per_slot=4096) as server:
        client = LikelihoodClient(server.base_url, args.max_chars or None)
        stats = score_passages(passages_of(pairs), client, out)

    scores, _ = load_likelihoods(out, args.max_chars or None)
    # the same pairs for every row: those whose two passages are scored
    both = [(p, q) for p, q in zip(compared.pairs, with_likelihood(compared.pairs, scores), strict=True)
            if q.verdict.status != "missing"]
    on_scored, scored = [p for p, _ in both], [q for _, q in both]
    reports = {
        "likelihood": teach(scored, LIKELIHOOD_CHECKABLE, compared.qrels)[1],
        "likelihood_retriever": teach(scored, LIKELIHOOD_RETRIEVER_CHECKABLE, compared.qrels)[1],
        "pairwise_judge": teach(on_scored, JUDGE_CHECKABLE, compared.qrels)[1],
    }
    summary_file = out.with_suffix(".summary.json")
    earlier = _earlier_runs(summary_file)
    this_run = {"model": args.model, "split": split, "checkable_only": args.checkable_only,
                "top_k": args.top_k, **stats,
                "command": command_line()}
    label_check = {name: {k: r[k] for k in REPORT_KEYS} for name, r in reports.items()}
    summary = {
        "dataset": args.dataset, "llm": args.llm_model, "max_chars": args.max_chars or None,
        "prompt_version": LIKELIHOOD_VERSION, "scores_file": portable(out.resolve()),
        "pairs_model": pairs_model,
        # every run's requests, seconds and tokens, oldest first (the scores file grows across runs)
        "runs": [*earlier["runs"], this_run],
        # per stage-1 model whose split and retrieval order the check uses: its latest run's figures
        "label_check": {**earlier["label_check"], args.model: {
            "split": split, "pairs_compared": len(compared.pairs), "pairs_scored": len(on_scored),
            **label_check}},
    }
    write_json(summary_file, summary)
    for name, r in label_check.items():
        print(f"{name}: right on {r['teacher_accuracy_checkable']} of {r['teacher_kept_checkable_pairs']} "
              f"checkable pairs; the retrieval order {r['order_accuracy_on_kept_checkable']}")
    print(summary_file)


def _earlier_runs(summary_file: Path) -> dict[str, Any]:
    """The runs and per-model label checks an earlier run stored in ``summary_file`` (also from the
    one-run layout it had before it kept them all)."""
    if not summary_file.is_file():
        return {"runs": [], "label_check": {}}
    earlier = read_json(summary_file, "move it away; the next run writes a new one")
    if "runs" in earlier:
        return {"runs": earlier["runs"], "label_check": earlier["label_check"]}
    run_ = {"model": earlier["model"], "split": earlier["split"], "checkable_only": earlier["checkable_only"],
            **earlier["run"], "command": earlier["commands"][-1]}
    check = {"split": earlier["split"], "pairs_compared": earlier["pairs_compared"],
             "pairs_scored": earlier["pairs_scored"], **earlier["label_check"]}
    return {"runs": [run_], "label_check": {earlier["model"]: check}}


if __name__ == "__main__":
    run(main)
