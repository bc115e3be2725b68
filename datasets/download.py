"""Fetch a BEIR dataset into the data folder.

    python datasets/download.py scifact [--mirror DIR] [--copy]

Links (or copies) it from a local mirror when one holds it (--mirror, SYNTRIEVER_MIRROR, or
../shared/datasets beside the repository), else downloads BEIR's zip. Then loads every split
present to validate it.
"""

import argparse

from syntriever.cli import run, setup_logging
from syntriever.data import fetch_dataset, load_dataset
from syntriever.jsonl import DataError


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("dataset")
    parser.add_argument("--mirror", default=None, help="local folder holding BEIR datasets")
    parser.add_argument("--copy", action="store_true", help="copy from the mirror instead of linking")
    args = parser.parse_args()
    setup_logging()
    path = fetch_dataset(args.dataset, args.mirror, copy=args.copy)
    for qrels in sorted((path / "qrels").glob("*.tsv")):
        try:
            ds = load_dataset(path, qrels.stem)
        except DataError as err:
            if path.is_symlink():
                raise DataError(f"{err} (linked from the mirror {path.resolve()}: fix it there)") from None
            raise DataError(f"{err}; the fetched copy {path} is kept as it is: fix that file, or delete the "
                            f"folder (`rm -r {path}`) and run `python datasets/download.py {args.dataset}` "
                            "again") from None
        print(f"{args.dataset}/{qrels.stem}: {len(ds.corpus)} docs, {len(ds.queries)} queries, "
              f"{sum(len(d) for d in ds.qrels.values())} judgements")


if __name__ == "__main__":
    run(main)
