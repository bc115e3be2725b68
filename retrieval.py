"""Stage 2, step 1: rank the corpus for every training query with the stage-1 model.

    python retrieval.py MODEL-sft DATASET [--retrieval-depth 100] [--text-k 0] [--index faiss]
        [--devices cuda:0,cuda:1]

MODEL-sft is a trained stage-1 name (resolves to output/<MODEL-sft>-<DATASET>), a preset, a
folder or a hub id. Writes generated/<dataset>/retrieval-<MODEL-sft>.jsonl (--retrieval-depth,
alias --k, ranked doc ids and
scores per query; passage texts of the first text-k, none by default since the comparisons read
them from the corpus) and a summary with Recall@k of the train
qrels; stage2/parse_comparison.py reads it.

Encodes in fp32 by default, not evaluate.py's auto: this ranking decides which pairs the judge
compares, and under bf16 near-ties among the top few passages swap order, so a bf16 run sends
other pairs to the judge than the committed answers (made from an fp32 ranking) cover: hours of
new LLM requests. --precision bf16/auto trades that for faster encoding.
"""

import argparse
import json

from syntriever.cli import add_search_args, positive_int, run, search_options, setup_logging
from syntriever.jsonl import read_json
from syntriever.retrieval import retrieve_training_queries

PRECISION_WHY = (": the ranking picks the judge's pairs, committed judge answers come from fp32 "
                 "rankings, and bf16 swaps near-ties, sending new pairs to the judge")


def build_parser() -> argparse.ArgumentParser:
    """The command-line flags of retrieval.py."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("model", help="stage-1 model, e.g. minilm-sft")
    parser.add_argument("dataset")
    parser.add_argument("--retrieval-depth", "--k", dest="retrieval_depth", type=positive_int, default=100,
                        help="passages ranked per query (the judge compares the top few of them)")
    parser.add_argument("--text-k", type=int, default=0,
                        help="passage texts stored per query (default none: the comparisons read them "
                             "from the corpus)")
    add_search_args(parser, "fp32", PRECISION_WHY)
    return parser


def main() -> None:
    args = build_parser().parse_args()
    setup_logging()
    out = retrieve_training_queries(
        args.model, args.dataset, args.retrieval_depth, args.text_k, batch_size=args.batch_size,
        max_seq_length=args.max_seq_length, use_cache=not args.no_cache, **search_options(args),
    )
    summary = read_json(out.with_suffix(".summary.json"), "run the same command again")
    print(json.dumps({k: summary[k] for k in ("queries", "recall", "mrr@10", "timings")}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    run(main)
