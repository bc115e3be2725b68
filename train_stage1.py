"""Stage 1 (distillation): fine-tune an encoder with the Syntriever cluster loss.

    python train_stage1.py MODEL DATASET [--no-cot] [--no-synthetic] [--no-verify] [--labelled-only]

MODEL is an encoder preset (minilm, e5, contriever), a local folder or a hub id. Reads the train
split and the synthetic data of datasets/parse_synthetic.py; saves output/<MODEL>-sft-<DATASET>
(ablations: -sft-nocot, -sft-nosyn, -sft-noverify; labelled pairs only: <MODEL>-labelled;
filtered negatives: -sft-negcopies, -sft-negcoverage, -sft-negjudge; labelled-pair term: -sft-pullW;
related negatives: -sft-negrelated; then epochs on the labelled pairs alone: -sft-thenlabE; synthetic
data of another prompt version or LLM: -v2, -qwen1.5b).
It refuses to replace a model trained with other data or settings (--output-name or --overwrite).
"""

import argparse
from dataclasses import replace
from pathlib import Path

from syntriever.cli import add_train_args, non_negative_float, run, settings_from_args, setup_logging
from syntriever.data import TRAIN_NODEV, load_dataset
from syntriever.encoders import open_encoder
from syntriever.errors import UserError
from syntriever.llm.config import default_model
from syntriever.llm.local import DEFAULT_PRESET
from syntriever.names import PASSAGE_QUERIES, has_passage_queries, model_dir, stage1_name
from syntriever.passage_queries import load_passage_queries
from syntriever.paths import portable
from syntriever.profiles import REMOTE_LLM, describe_training
from syntriever.prompts import PROMPT_VERSION, PROMPT_VERSIONS
from syntriever.provenance import CARD_NAME
from syntriever.stage1 import (
    NEGATIVE_FILTERS,
    NEGATIVE_SOURCES,
    Stage1Variant,
    build_examples,
    load_synthetic,
    make_loss,
    only_queries_of,
    synthetic_input,
)
from syntriever.training import Phase, train


def build_parser() -> argparse.ArgumentParser:
    """The command-line flags of train_stage1.py."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("dataset")
    parser.add_argument("--synthetic", type=Path, default=None,
                        help="synthetic JSONL (default: the run of --llm-model for DATASET)")
    parser.add_argument("--llm-model", default=default_model(DEFAULT_PRESET),
                        help=f"which LLM's synthetic data to use (default: {DEFAULT_PRESET}, or {REMOTE_LLM} "
                        "when an API key or OPENAI_BASE_URL is set, as for datasets/parse_synthetic.py)")
    parser.add_argument("--prompt-version", choices=PROMPT_VERSIONS, default=PROMPT_VERSION,
                        help="which prompt version's synthetic data to use")
    parser.add_argument("--no-cot", action="store_true", help="ablation: without CoT queries")
    parser.add_argument("--no-synthetic", action="store_true", help="ablation: without synthetic passages")
    parser.add_argument("--no-verify", action="store_true",
                        help="ablation: ignore self-verification (reads the run's unverified file of "
                        "parse_synthetic.py --skip-verification when the run has no verified "
                        "<dataset>_synthetic.jsonl)")
    parser.add_argument("--filter-negatives", choices=NEGATIVE_FILTERS, default=None,
                        help="not in the paper: drop synthetic negatives that copy the query "
                        "(copies), hold >= 80%% of its content words (coverage) or that the judge rates "
                        "at least as relevant as the positive (judge)")
    parser.add_argument("--labelled-weight", type=non_negative_float, default=0.0,
                        help="not in the paper: add this weight times the labelled pair's InfoNCE term "
                        "to the cluster loss (model name -pullW)")
    parser.add_argument("--negatives", choices=NEGATIVE_SOURCES, default="synthetic",
                        help="synthetic: the LLM's irrelevant passage (paper); related (not in the paper): "
                        "the synthetic positive of the most similar other training query (model -negrelated)")
    parser.add_argument("--then-labelled", type=non_negative_float, default=0.0, metavar="EPOCHS",
                        help="not in the paper: after the stage-1 epochs, train EPOCHS more on the labelled "
                        "pairs alone (InfoNCE, fresh warm-up and schedule; model name -thenlabE); "
                        "--max-steps, if given, bounds each phase instead")
    parser.add_argument("--passage-queries", type=Path, default=None, metavar="JSONL",
                        help="not in the paper: (synthetic query, corpus passage) pairs of "
                        "datasets/parse_passage_queries.py, added to the labelled pairs wherever they are "
                        "trained with InfoNCE alone (--labelled-only, the --then-labelled phase); needs "
                        "--output-name, holding -pq<N> for the tables (e.g. minilm-labelled-pq800-L256)")
    parser.add_argument("--labelled-only", action="store_true",
                        help="baseline: InfoNCE on the labelled pairs only (no synthetic data)")
    parser.add_argument("--allow-missing-synthetic", action="store_true",
                        help="train although some training queries have no synthetic record (their "
                        "pairs are left out, with a warning); by default that is an error")
    parser.add_argument("--only-queries-of", type=Path, default=None, metavar="JSONL",
                        help="train on the labelled pairs of the queries with a record in this JSONL "
                        "only (e.g. a partial synthesis run), for like-for-like comparisons on a subset; "
                        "needs --output-name")
    parser.add_argument("--output-name", default=None,
                        help="model name (default: MODEL-sft[-ablation], plus -VERSION and -LLM for "
                        "synthetic data of a prompt version or LLM other than the default, and -nodev for "
                        "--train-split train-nodev; syntriever/names.py)")
    parser.add_argument("--train-split", choices=["train", TRAIN_NODEV], default="train",
                        help="train-nodev: train without the dev queries, for choices scored with "
                        "`evaluate.py NAME DATASET --split dev` (final models: train)")
    add_train_args(parser, describe_training(1))
    return parser


def variant_of(args: argparse.Namespace) -> Stage1Variant:
    """The parts of the method the flags turn on."""
    return Stage1Variant(
        use_cot=not (args.no_cot or args.labelled_only),
        use_synthetic=not (args.no_synthetic or args.labelled_only),
        use_verification=not args.no_verify,
        negative_filter=args.filter_negatives,
        labelled_weight=args.labelled_weight,
        negative_source=args.negatives,
        then_labelled=args.then_labelled,
    )


def default_name(args: argparse.Namespace) -> str:
    """The model name without --output-name (:func:`syntriever.names.stage1_name`)."""
    return stage1_name(args.model, variant_of(args).suffix(), nodev=args.train_split == TRAIN_NODEV,
                       llm_model=args.llm_model, prompt_version=args.prompt_version)


def main() -> None:
    args = build_parser().parse_args()
    setup_logging()
    variant = variant_of(args)
    if args.only_queries_of and not args.output_name:
        raise UserError("--only-queries-of trains on a subset of the queries: name the model with "
                        "--output-name")
    if args.passage_queries and not has_passage_queries(args.output_name or ""):
        raise UserError(f"--passage-queries adds training pairs: name the model with --output-name "
                        f"holding -{PASSAGE_QUERIES}<N> (N passages), e.g. "
                        f"minilm-labelled-{PASSAGE_QUERIES}500-L256")
    if args.passage_queries and variant.uses_llm_data and not variant.then_labelled:
        raise UserError("--passage-queries joins the InfoNCE pairs: use it with --labelled-only or "
                        "--then-labelled")
    name = args.output_name or default_name(args)
    out_dir = model_dir(name, args.dataset)
    train_split = load_dataset(args.dataset, args.train_split)
    if args.only_queries_of:
        train_split = only_queries_of(train_split, args.only_queries_of)
    synthetic_file = None
    synthetic = None
    if variant.uses_llm_data:
        synthetic_file = synthetic_input(args.dataset, variant, args.llm_model, args.prompt_version,
                                         args.synthetic)
        synthetic = load_synthetic(synthetic_file)
    extra = (load_passage_queries(args.passage_queries, train_split)
             if args.passage_queries else None)
    model, source = open_encoder(args.model)
    dataset, counts = build_examples(train_split, model, variant, synthetic,
                                     allow_missing=args.allow_missing_synthetic,
                                     source=str(synthetic_file),
                                     passage_queries=None if variant.uses_llm_data else extra)
    settings = settings_from_args(args)
    card = {
        "stage": 1, "base_model": args.model,
        # a trained model as the start: its card's commands come first in this model's
        "base_model_path": portable(Path(source)) if (Path(source) / CARD_NAME).is_file() else None,
        "dataset": args.dataset, "split": args.train_split,
        "variant": variant.__dict__,
        "synthetic_file": portable(synthetic_file.resolve()) if synthetic_file else None,
        "prompt_version": next(iter(synthetic.values())).get("prompt_version") if synthetic else None,
        "example_counts": counts,
        "only_queries_of": portable(args.only_queries_of.resolve()) if args.only_queries_of else None,
        "passage_queries": portable(args.passage_queries.resolve()) if args.passage_queries else None,
    }
    then: tuple[Phase, ...] = ()
    if variant.then_labelled:
        labelled = Stage1Variant(use_cot=False, use_synthetic=False)
        pairs, card["then_example_counts"] = build_examples(train_split, model, labelled, None,
                                                            passage_queries=extra)
        then = (Phase("labelled", pairs, make_loss(model, labelled),
                      replace(settings, epochs=variant.then_labelled)),)
    card = train(model, dataset, make_loss(model, variant), settings, out_dir, card, overwrite=args.overwrite,
                 then=then)
    print(f"saved {out_dir}: {card['steps']} steps in {card['train_seconds']} s "
          f"({card['examples_per_s']} examples/s), final loss {card['final_train_loss']}"
          + "".join(f"; then {p['phase']}: {p['steps']} steps in {p['train_seconds']} s, final loss "
                    f"{p['final_train_loss']}" for p in card.get("then", [])))
    dev = " --split dev" if args.train_split == TRAIN_NODEV else ""
    print(f"evaluate with: python evaluate.py {name} {args.dataset}{dev}")


if __name__ == "__main__":
    run(main)
