"""Evaluate a retriever on a BEIR split, or gather a dataset's results into a table.

    python evaluate.py MODEL DATASET [--split test]     # e.g. minilm, minilm-sft, minilm-final, bm25
    python evaluate.py --table DATASET [--baseline minilm]
    python evaluate.py MODEL msmarco --split dev --index faiss --devices cuda:0,cuda:1   # large corpora

Writes results/<dataset>/<MODEL>.json (BEIR metrics, per-query nDCG@10, config, timings);
--table writes results/<dataset>/README.md and ndcg10.png (95% bootstrap CIs, paired tests).
"""

import argparse
import json

from syntriever.cli import add_search_args, positive_int, run, search_options, setup_logging
from syntriever.data import headline_split
from syntriever.evaluation import REPORTED, evaluate_model
from syntriever.tables import write_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("model", nargs="?", help="bm25, an encoder preset, a trained name, a path or hub id")
    parser.add_argument("dataset", nargs="?")
    parser.add_argument("--table", metavar="DATASET", help="write the results table of DATASET")
    parser.add_argument("--baseline", default=None, help="row to test every other row against")
    parser.add_argument("--allow-mixed", action="store_true",
                        help="--table: tabulate results of different splits or query counts together "
                        "(refused by default: such rows cannot be compared)")
    parser.add_argument("--split", default=None,
                        help="test (default; MS MARCO: dev), or dev: the split carved from the train "
                        "queries (datasets/make_dev_split.py) that chooses every option; results of "
                        "other splits go to results/<dataset>/<split>/")
    parser.add_argument("--trained-on", default=None, metavar="DATASET",
                        help="zero-shot transfer: resolve trained names (minilm-sft) on DATASET's "
                        "output, e.g. train on scifact, evaluate on nfcorpus")
    parser.add_argument("--top-k", type=positive_int, default=100)
    add_search_args(parser)
    args = parser.parse_args()
    setup_logging()
    if args.table:
        path = write_table(args.table, baseline=args.baseline, split=args.split, allow_mixed=args.allow_mixed)
        print(path.read_text())
        return
    if not (args.model and args.dataset):
        parser.error("give MODEL DATASET, or --table DATASET")
    record, path = evaluate_model(
        args.model, args.dataset, args.split or headline_split(args.dataset), top_k=args.top_k,
        batch_size=args.batch_size,
        max_seq_length=args.max_seq_length, use_cache=not args.no_cache, trained_on=args.trained_on,
        **search_options(args),
    )
    shown = {k: round(100 * record["metrics"][k], 2) for k in REPORTED}
    print(json.dumps({"model": args.model, "dataset": args.dataset, "metrics_x100": shown,
                      "passages_per_s": record["config"].get("passages_per_s"),
                      "timings": record["timings"], "result_file": str(path)}, indent=2))


if __name__ == "__main__":
    run(main)
