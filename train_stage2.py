"""Stage 2 (alignment): continue the stage-1 model on LLM preference triples.

    python train_stage2.py MODEL-sft DATASET [--loss pl|bt] [--teacher judge|judge-confident|oracle|
        identity|judge-retriever|oracle-judge|judge-checkable|identity-checkable|oracle-flip-judge|
        oracle-flip-identity|oracle-flip-<P>pct|judge-retriever-checkable|likelihood|likelihood-retriever|
        likelihood-checkable|likelihood-retriever-checkable|oracle-judge-retriever|
        oracle-likelihood-retriever] [--train-split train|train-nodev]
        [--pairs-from MODEL] [training flags]

Loads the stage-1 model (output/<MODEL-sft>-<DATASET>) and trains it with the partial
Plackett-Luce loss (pl, the paper) or Bradley-Terry (bt, the paper's ablation) on preference
triples over the pairs stage2/parse_comparison.py had the judge compare (the top K of the
retrieval file of --pairs-from, default MODEL-sft itself). The --teacher decides each pair
(syntriever/teachers.py): the judge (the paper), its confident pairs (|d| threshold calibrated on
the training queries' labelled pairs), the train qrels (oracle), the retrieval order (identity),
the judge's margin plus the retrieval score gap, or a control that separates a teacher's accuracy
from where its errors fall (the judge or the order on the labelled pairs only; the oracle with as
many errors, at random pairs, or with P% of its triples turned round). The likelihood teachers
decide on the query likelihood log P(query | passage) (stage2/score_likelihood.py, not in the
paper) instead of the pairwise judge's answers. With --pairs-from another
model, "the retrieval order" is MODEL's own: it re-scores the pairs
(syntriever.stage2.rescore_pairs). Only the queries of --train-split give triples (train-nodev:
never a dev query; the default for a -nodev stage-1 model). Saves
output/<MODEL>-final[-<teacher>][-top<K>][-bt][-seed<N>][-nodev]-<DATASET>, where <MODEL> is
MODEL-sft without "-sft"
(syntriever/names.py); the model card holds the teacher's report (pairs kept, judge and
retrieval-order accuracy on the label-checkable pairs, position bias, threshold).
"""

import argparse
from pathlib import Path

from syntriever.cli import (
    add_pairs_from,
    add_train_args,
    check_top_k,
    positive_int,
    run,
    settings_from_args,
    setup_logging,
    teacher_name,
)
from syntriever.data import TRAIN_NODEV, split_qrels
from syntriever.encoders import load_encoder
from syntriever.jsonl import DataError, read_json
from syntriever.llm.config import default_model
from syntriever.llm.local import DEFAULT_JUDGE_PRESET
from syntriever.losses import BradleyTerryLoss, PartialPlackettLuceLoss
from syntriever.names import (
    BT_LOSS,
    DEFAULT_TEACHER,
    PL_LOSS,
    final_name,
    model_dir,
    teacher_choices,
)
from syntriever.paths import check_name, dataset_dir, portable
from syntriever.profiles import REMOTE_LLM, describe_training
from syntriever.stage2 import (
    build_preference_examples,
    load_preferences,
    order_model_for,
    pairs_preferences,
    teacher_preferences,
    trained_stage1,
)
from syntriever.teachers import JUDGE
from syntriever.training import train

LOSSES = {PL_LOSS: PartialPlackettLuceLoss, BT_LOSS: BradleyTerryLoss}


def build_parser() -> argparse.ArgumentParser:
    """The command-line flags of train_stage2.py."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("model", help="stage-1 model, e.g. minilm-sft")
    parser.add_argument("dataset")
    parser.add_argument("--loss", choices=sorted(LOSSES), default="pl",
                        help="pl: partial Plackett-Luce (paper); bt: Bradley-Terry (ablation)")
    parser.add_argument("--teacher", type=teacher_name, default=DEFAULT_TEACHER,
                        help=f"who decides each compared pair: {teacher_choices()} (default: judge, "
                        "the paper)")
    parser.add_argument("--train-split", choices=["train", TRAIN_NODEV], default=None,
                        help="queries whose pairs give triples (default: train-nodev for a -nodev "
                        "stage-1 model, else train)")
    add_pairs_from(parser)
    parser.add_argument("--top-k", type=positive_int, default=None, metavar="K",
                        help="every pair of the top K of the retrieval file, not only the judged ones "
                        "(oracle, identity, likelihood teachers; the likelihood scores them with "
                        "stage2/score_likelihood.py --top-k K)")
    parser.add_argument("--preferences", type=Path, default=None,
                        help="use this preference JSONL as is (judge teacher, split train only)")
    parser.add_argument("--llm-model", default=default_model(DEFAULT_JUDGE_PRESET),
                        help=f"which judge's preferences to use (default: {DEFAULT_JUDGE_PRESET}, or "
                        f"{REMOTE_LLM} when an API key or OPENAI_BASE_URL is set, as for "
                        "stage2/parse_comparison.py)")
    parser.add_argument("--output-name", default=None,
                        help="model name (default: MODEL-final[-TEACHER][-topK][-bt][-nodev])")
    add_train_args(parser, describe_training(2))
    return parser


def default_name(args: argparse.Namespace, split: str) -> str:
    """The model name without --output-name, for a stage-1 model trained on ``split``."""
    return final_name(args.model, args.loss, args.teacher, nodev=split == TRAIN_NODEV, seed=args.seed,
                      top_k=args.top_k)


def main() -> None:
    parser = build_parser()
    args = parser.parse_args()
    setup_logging()
    check_name(args.dataset)
    source, split = trained_stage1(args.model, args.dataset)
    if args.train_split is not None and args.train_split != split:
        parser.error(f"{args.model!r} was trained on split {split!r}: stage 2 must use it too "
                     f"(--train-split {split}, or leave the flag out), so that a -nodev model never "
                     "saw a dev query and a stage-2 name never stands for two models")
    check_top_k(parser, [args.teacher], args.top_k)
    if args.top_k is not None and args.preferences:
        parser.error("--top-k builds the pairs from the retrieval file; leave out --preferences")
    if args.preferences and (args.teacher != JUDGE or split != "train"):
        parser.error("--preferences is used as is: only with --teacher judge and --train-split train")
    name = args.output_name or default_name(args, split)
    out_dir = model_dir(name, args.dataset)
    pairs_model, pref_file = pairs_preferences(args.dataset, args.model, args.pairs_from, args.llm_model)
    pref_file = args.preferences or pref_file
    make = f"python stage2/parse_comparison.py {pairs_model} {args.dataset} --llm-model {args.llm_model}"
    if not pref_file.is_file():
        raise DataError(f"{pref_file}: preferences not found" + ("" if args.preferences else
                        f"; make them with `{make}`"))
    model = load_encoder(args.model, args.dataset)
    if args.preferences:
        queries, _ = split_qrels(dataset_dir(args.dataset), split)  # the split's query ids, no corpus
        triples, report = load_preferences(pref_file, queries), {"teacher": JUDGE, "split": split}
    else:
        order_model = order_model_for(args.model, pairs_model, args.dataset, model)
        triples, report = teacher_preferences(args.dataset, pref_file, pairs_model, args.teacher, split,
                                              order_model=order_model, top_k=args.top_k)
    if not triples:
        raise DataError(f"teacher {args.teacher} kept no pair of {pref_file}")
    summary_file = pref_file.with_suffix(".summary.json")
    judge = {}
    if summary_file.is_file():
        judge = read_json(summary_file, f"make it again: {make} (answers are reused)")
    dataset = build_preference_examples(triples, model)
    settings = settings_from_args(args, stage=2)
    card = {
        "stage": 2, "base_model": args.model, "base_model_path": portable(source), "dataset": args.dataset,
        "split": split, "preferences_file": portable(pref_file.resolve()), "stage2_loss": args.loss,
        "teacher": args.teacher, "top_k": args.top_k, "teacher_report": report,
        "prompt_version": judge.get("prompt_version"), "judge": judge.get("llm"),
        "judge_settings": judge.get("settings"),
        "example_counts": {"triples": len(triples), "queries": len({t["query_id"] for t in triples})},
    }
    card = train(model, dataset, LOSSES[args.loss](model), settings, out_dir, card, overwrite=args.overwrite)
    print(f"saved {out_dir}: {card['steps']} steps in {card['train_seconds']} s "
          f"({card['examples_per_s']} examples/s), final loss {card['final_train_loss']}")
    print(f"teacher {args.teacher}: {report.get('pairs_kept', len(triples))} triples; threshold "
          f"{report.get('threshold')}; judge accuracy on label-checkable pairs "
          f"{report.get('judge_accuracy_checkable')} (retrieval order "
          f"{report.get('order_accuracy_on_judged_checkable')})")
    dev = " --split dev" if split == TRAIN_NODEV else ""
    print(f"evaluate with: python evaluate.py {name} {args.dataset}{dev}")


if __name__ == "__main__":
    run(main)
