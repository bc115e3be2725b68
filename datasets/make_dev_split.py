"""Carve a dev split from a dataset's train queries, for choosing options without touching test.

    python datasets/make_dev_split.py scifact [--share 0.2] [--seed 0]

Writes splits/<dataset>/dev.tsv (BEIR qrels of the chosen train queries), committed with the
repository. Experiments then train on split ``train-nodev`` and are scored with
``evaluate.py MODEL DATASET --split dev``. An existing split is never replaced by a different one.
"""

import argparse

from syntriever.cli import run, setup_logging
from syntriever.data import (
    DEV_SEED,
    DEV_SHARE,
    carve_dev_split,
    carved_dev_path,
    load_qrels,
    write_qrels,
)
from syntriever.jsonl import DataError
from syntriever.paths import dataset_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("dataset")
    parser.add_argument("--share", type=float, default=DEV_SHARE, help="share of train queries for dev")
    parser.add_argument("--seed", type=int, default=DEV_SEED)
    args = parser.parse_args()
    setup_logging()
    folder = dataset_dir(args.dataset)
    if not folder.is_dir():
        raise DataError(f"{folder}: no dataset there; fetch it with "
                        f"`python datasets/download.py {args.dataset}`")
    if not (folder / "qrels" / "train.tsv").is_file():
        raise DataError(f"{folder}: {args.dataset} has no qrels/train.tsv to carve a dev split from; "
                        "evaluate on a split it has (evaluate.py --split)")
    train = load_qrels(folder / "qrels" / "train.tsv")
    rest, dev = carve_dev_split(train, args.share, args.seed)
    out = carved_dev_path(args.dataset)
    if out.is_file():
        if load_qrels(out) == dev:
            print(f"{out} is up to date ({len(dev)} dev queries)")
            return
        raise DataError(f"{out}: a different dev split exists; results on it would no longer compare. "
                        f"Delete it first if you really mean to carve a new one")
    write_qrels(out, dev)
    print(f"wrote {out}: {len(dev)} dev queries ({sum(map(len, dev.values()))} pairs); "
          f"{len(rest)} train-nodev queries ({sum(map(len, rest.values()))} pairs)")


if __name__ == "__main__":
    run(main)
