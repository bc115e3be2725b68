"""Synthetic queries for sampled corpus passages (InPars/GPL-style; not in the paper).

    python datasets/parse_passage_queries.py scifact [--passages N] [--llm-model qwen1.5b]

Writes generated/<dataset>/passage-queries-<prompt version>-<model>/<dataset>_passage_queries.n<N>.jsonl
and a summary; re-running resumes from the answers already written. Stage 1 takes the file with
``train_stage1.py ... --passage-queries FILE``.
"""

import argparse

from syntriever.cli import parse_llm_cli, positive_int, run
from syntriever.data import TRAIN_NODEV, load_dataset
from syntriever.llm.config import summary_text
from syntriever.passage_queries import PassageQuerySettings, run_passage_queries

DEFAULTS = PassageQuerySettings()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("dataset")
    parser.add_argument("--passages", type=positive_int, default=DEFAULTS.passages,
                        help="corpus passages to sample (seeded)")
    parser.add_argument("--examples", type=positive_int, default=DEFAULTS.examples,
                        help="training queries shown in the prompt as examples of the collection's queries")
    parser.add_argument("--examples-split", default=TRAIN_NODEV, choices=[TRAIN_NODEV, "train"],
                        help="split the example queries come from (train-nodev keeps the dev queries "
                        "out; the passages are sampled from the whole corpus either way)")
    parser.add_argument("--max-chars", type=positive_int, default=DEFAULTS.max_chars,
                        help="passage cut in the prompt")
    parser.add_argument("--chunk", type=positive_int, default=DEFAULTS.chunk,
                        help="passages per step run (a stopped run leaves complete chunks)")
    parser.add_argument("--seed", type=int, default=DEFAULTS.seed)
    args, config = parse_llm_cli(parser)
    settings = PassageQuerySettings(passages=args.passages, examples=args.examples,
                                    max_chars=args.max_chars, chunk=args.chunk, seed=args.seed)
    out = run_passage_queries(load_dataset(args.dataset, args.examples_split), config, settings)
    if out is not None:
        print(summary_text(out))


if __name__ == "__main__":
    run(main)
