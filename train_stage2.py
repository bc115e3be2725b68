"""Stage 2 (alignment): continue the stage-1 model on LLM preference triples.

    python train_stage2.py MODEL-sft DATASET [--loss pl|bt] [--preferences FILE] [training flags]

Loads the stage-1 model (output/<MODEL-sft>-<DATASET>) and the triples of
stage2/parse_comparison.py, and trains with the partial Plackett-Luce loss (pl, the paper) or
Bradley-Terry (bt, the paper's ablation). Saves output/<MODEL>-final-<DATASET> (pl) or
output/<MODEL>-final-bt-<DATASET> (bt), where <MODEL> is MODEL-sft without "-sft".
"""

import argparse
import json
from pathlib import Path

from syntriever.cli import add_train_args, run, settings_from_args, setup_logging
from syntriever.encoders import load_encoder, resolve
from syntriever.jsonl import DataError
from syntriever.judge import preferences_path
from syntriever.llm.config import LLMConfig
from syntriever.llm.local import DEFAULT_JUDGE_PRESET
from syntriever.losses import BradleyTerryLoss, PartialPlackettLuceLoss
from syntriever.names import final_name, model_dir
from syntriever.paths import check_name, file_safe, portable
from syntriever.profiles import describe_training
from syntriever.stage2 import build_preference_examples, load_preferences
from syntriever.training import train

LOSSES = {"pl": PartialPlackettLuceLoss, "bt": BradleyTerryLoss}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("model", help="stage-1 model, e.g. minilm-sft")
    parser.add_argument("dataset")
    parser.add_argument("--loss", choices=sorted(LOSSES), default="pl",
                        help="pl: partial Plackett-Luce (paper); bt: Bradley-Terry (ablation)")
    parser.add_argument("--preferences", type=Path, default=None,
                        help="preference JSONL (default: the comparison run of --llm-model for MODEL)")
    parser.add_argument("--llm-model", default=DEFAULT_JUDGE_PRESET,
                        help="which judge's preferences to use (default: the embedded judge)")
    parser.add_argument("--output-name", default=None, help="model name (default: MODEL-final[-bt])")
    add_train_args(parser, describe_training(2))
    args = parser.parse_args()
    setup_logging()
    check_name(args.dataset)
    name = args.output_name or final_name(args.model, args.loss)
    out_dir = model_dir(name, args.dataset)
    source, preset = resolve(args.model, args.dataset)
    if preset is not None or not Path(source).is_dir():
        parser.error(f"{args.model!r} is not a trained stage-1 model for {args.dataset} "
                     f"(expected {model_dir(file_safe(args.model), args.dataset)}); "
                     f"run train_stage1.py first")
    judge_config = LLMConfig(model=args.llm_model)
    pref_file = args.preferences or preferences_path(args.dataset, judge_config, args.model)
    if not pref_file.is_file():
        make = f"python stage2/parse_comparison.py {args.model} {args.dataset} --llm-model {args.llm_model}"
        raise DataError(f"{pref_file}: preferences not found; make them with `{make}`")
    triples = load_preferences(pref_file)
    summary_file = pref_file.with_suffix(".summary.json")
    judge = json.loads(summary_file.read_text()) if summary_file.is_file() else {}
    model = load_encoder(args.model, args.dataset)
    dataset = build_preference_examples(triples, model)
    settings = settings_from_args(args, stage=2)
    card = {
        "stage": 2, "base_model": args.model, "base_model_path": portable(source), "dataset": args.dataset,
        "split": "train", "preferences_file": portable(pref_file.resolve()), "stage2_loss": args.loss,
        "prompt_version": judge.get("prompt_version"), "judge": judge.get("llm"),
        "judge_settings": judge.get("settings"),
        "example_counts": {"triples": len(triples), "queries": len({t["query_id"] for t in triples})},
    }
    card = train(model, dataset, LOSSES[args.loss](model), settings, out_dir, card)
    print(f"saved {out_dir}: {card['steps']} steps in {card['train_seconds']} s "
          f"({card['examples_per_s']} examples/s), final loss {card['final_train_loss']}")
    print(f"evaluate with: python evaluate.py {name} {args.dataset}")


if __name__ == "__main__":
    run(main)
