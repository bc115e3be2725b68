"""Reproduce a dataset's table with one command: every stage of Syntriever, in order.

    python run_pipeline.py scifact                  # embedded defaults (minilm + local Qwen 0.5B)
    python run_pipeline.py scifact --compare-top-k 6         # re-runs comparisons, stage 2, evals
    python run_pipeline.py scifact --compare-top-k 6 --plan  # only lists what that would re-run
    python run_pipeline.py scifact --ablations      # also the ablation rows of Table 3 (and BT)
    python run_pipeline.py fiqa --model e5 --llm-backend batch --llm-model gpt-4o   # paper scale

data -> BM25 and zero-shot baselines -> synthesis -> labelled-only baseline -> stage 1 ->
retrieval -> comparisons -> stage 2 (PL; BT with --ablations) -> evaluation -> results/<dataset>/README.md.
Steps whose inputs and flags did not change are skipped (manifests in output/pipeline/); LLM
steps resume from what they wrote. Per-step wall time, LLM tokens and cost are printed at the end.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from syntriever.cli import pair_top_k, positive_int, run, setup_logging
from syntriever.data import check_available
from syntriever.judge import preferences_path
from syntriever.llm.config import LLMConfig, check_local_model, default_backend
from syntriever.llm.local import DEFAULT_JUDGE_PRESET, DEFAULT_PRESET, PRESETS
from syntriever.names import (
    LABELLED,
    NO_COT,
    NO_SYNTHETIC,
    NO_VERIFY,
    SFT,
    final_name,
    model_dir,
    negative_filter_suffix,
    stage1_name,
)
from syntriever.paths import dataset_dir, results_root
from syntriever.pipeline import Pipeline, Step, format_reports
from syntriever.profiles import EMBEDDED, JUDGE, PAPER
from syntriever.result_files import result_path
from syntriever.retrieval import retrieval_path
from syntriever.synthesis import synthetic_path

ABLATIONS = {  # model-name suffix -> train_stage1.py flags (the last one is not in the paper)
    NO_COT: ["--no-cot"], NO_SYNTHETIC: ["--no-synthetic"], NO_VERIFY: ["--no-verify"],
    negative_filter_suffix("copies"): ["--filter-negatives", "copies"],
}


def build_steps(args: argparse.Namespace) -> list[Step]:
    ds, sft = args.dataset, stage1_name(args.model, llm_model=args.llm_model)
    judge_model = args.judge_model or (DEFAULT_JUDGE_PRESET if args.llm_model in PRESETS else args.llm_model)
    # each LLM step's backend is fixed here and passed on, so the environment (an API key, a base
    # URL) cannot send an embedded model's requests elsewhere behind the manifests' back
    synth = LLMConfig(model=args.llm_model, backend=args.llm_backend or default_backend(args.llm_model))
    judge = LLMConfig(model=judge_model, backend=args.llm_backend or default_backend(judge_model))
    for config in (synth, judge):
        if config.is_local:
            check_local_model(config.model)
    synthetic = synthetic_path(ds, synth)
    prefs = preferences_path(ds, judge, sft)
    # fp32 training on a CPU too (bf16 is the trainer's default where the CPU has it): the committed
    # tables and judge answers come from fp32-trained models, and a bf16-trained stage 1 ranks other
    # passages in its top K, which would send new pairs to the judge (hours on a CPU)
    train_flags = ["--paper"] if args.paper else ["--no-bf16"]

    def llm_flags(config: LLMConfig) -> list[str]:
        return ["--llm-model", config.model, "--llm-backend", config.backend]

    def evaluate(name: str, after: str) -> Step:
        return Step(f"eval {name}", ["evaluate.py", name, ds], [result_path(ds, name)], [after])

    def saved(name: str) -> list[Path]:
        return [model_dir(name, ds)]

    steps = [
        Step("data", ["datasets/download.py", ds], [dataset_dir(ds) / "qrels"]),
        evaluate("bm25", "data"),
        evaluate(args.model, "data"),
        Step(
            "synthesis",
            ["datasets/parse_synthetic.py", ds, *llm_flags(synth)],
            [synthetic],
            ["data"],
            llm=synth,
        ),
        Step(
            "labelled-only",
            ["train_stage1.py", args.model, ds, "--labelled-only", *train_flags],
            saved(stage1_name(args.model, LABELLED)),
            ["data"],
        ),
        evaluate(stage1_name(args.model, LABELLED), "labelled-only"),
        Step(
            "stage 1",
            ["train_stage1.py", args.model, ds, "--llm-model", args.llm_model, *train_flags],
            saved(sft),
            ["synthesis"],
        ),
        evaluate(sft, "stage 1"),
    ]
    if args.ablations:
        for suffix, flags in ABLATIONS.items():
            name = stage1_name(args.model, f"{SFT}-{suffix}", llm_model=args.llm_model)
            steps.append(
                Step(
                    f"stage 1 {suffix}",
                    ["train_stage1.py", args.model, ds, *flags, "--llm-model", args.llm_model, *train_flags],
                    saved(name),
                    ["synthesis"],
                )
            )
            steps.append(evaluate(name, f"stage 1 {suffix}"))
    if not args.stage1_only:
        compare = ["stage2/parse_comparison.py", sft, ds, *llm_flags(judge)]
        if args.compare_top_k:
            compare += ["--compare-top-k", str(args.compare_top_k)]
        if args.pairs:
            compare += ["--pairs", str(args.pairs)]
        steps += [
            Step(
                "retrieval",
                ["retrieval.py", sft, ds],
                [retrieval_path(ds, sft)],
                ["stage 1"],
            ),
            Step("comparisons", compare, [prefs], ["retrieval"], llm=judge),
            Step(
                "stage 2",
                ["train_stage2.py", sft, ds, "--llm-model", judge_model, *train_flags],
                saved(final_name(sft)),
                ["comparisons"],
            ),
            evaluate(final_name(sft), "stage 2"),
        ]
        if args.ablations:  # the paper's stage-2 ablation: Bradley-Terry instead of partial PL
            steps += [
                Step(
                    "stage 2 bt",
                    ["train_stage2.py", sft, ds, "--loss", "bt", "--llm-model", judge_model,
                     *train_flags],
                    saved(final_name(sft, "bt")),
                    ["comparisons"],
                ),
                evaluate(final_name(sft, "bt"), "stage 2 bt"),
            ]
    steps.append(
        Step(
            "table",
            ["evaluate.py", "--table", ds, "--baseline", args.model],
            [results_root() / ds / "README.md"],
            [s.name for s in steps if s.name.startswith("eval")],
            always=True,
        )
    )
    return steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("dataset")
    parser.add_argument("--model", default="minilm", help="encoder preset, path or hub id")
    parser.add_argument("--llm-model", default=DEFAULT_PRESET)
    parser.add_argument("--llm-backend", choices=["batch", "online", "local"], default=None)
    parser.add_argument("--judge-model", default=None,
                        help=f"stage-2 judge (default: {DEFAULT_JUDGE_PRESET} with an embedded --llm-model, "
                        "else --llm-model)")
    parser.add_argument("--compare-top-k", "--k", dest="compare_top_k", type=pair_top_k, default=None,
                        help=f"top passages of each query the stage-2 judge compares (default: "
                        f"{JUDGE[PAPER]['k']}, {JUDGE[EMBEDDED]['k']} with the embedded judge)")
    parser.add_argument("--pairs", type=positive_int, default=None,
                        help="pairs per query (default: all C(k,2))")
    parser.add_argument("--ablations", action="store_true",
                        help="also the ablations: stage 1 without CoT / synthetic passages / verification, "
                        "with filtered negatives, and stage 2 with Bradley-Terry")
    parser.add_argument("--stage1-only", action="store_true", help="stop after stage 1")
    parser.add_argument("--paper", action="store_true", help="the paper's training settings even on CPU")
    parser.add_argument("--plan", action="store_true",
                        help="run nothing: list the steps that would run and those up to date")
    args = parser.parse_args()
    setup_logging()
    steps = build_steps(args)  # checks the LLMs first: no dataset is needed for that
    check_available(args.dataset)
    pipeline = Pipeline(args.dataset, steps)
    reports = pipeline.run(plan_only=args.plan)
    print("\n" + format_reports(reports))


if __name__ == "__main__":
    run(main)
