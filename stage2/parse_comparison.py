"""Stage 2, step 2: LLM preferences between the stage-1 model's top passages.

    python stage2/parse_comparison.py MODEL-sft DATASET [--compare-top-k K] [--pairs N]
        [--judge-mode text|logprobs] [--judge-max-chars N] [--llm-backend local|online|batch]

Reads generated/<dataset>/retrieval-<MODEL-sft>.jsonl (retrieval.py) and asks the LLM, for the
top K passages (--compare-top-k, alias --k) of every training query, which of two passages is
more relevant (all C(K,2) pairs, or the first N in rank order with --pairs). Writes
generated/<dataset>/comparison-<prompt version>-<llm>-<MODEL-sft>/<dataset>_preferences.jsonl
(one triple per decided pair) and a summary; re-running resumes from the results written.

With the train qrels, the summary's "label_check" says how often the judge prefers the
labelled-relevant passage of the pairs with exactly one, against the retrieval order.

Judge modes: "text" reads the answer "Passage #1"/"Passage #2" (the paper; default for remote
models); "logprobs" asks both orders and compares log P("1") - log P("2") averaged over the
orders, which cancels position bias (default for the embedded model). Unparseable answers are
counted, never guessed. --judge-max-chars truncates passages in the prompt only (default: none
for remote models, a few hundred characters for the embedded model to bound CPU prompt
processing). The defaults of both profiles are in syntriever/profiles.py.
Requests sharing a prefix (query, passage #1) are consecutive, for llama.cpp's prompt cache; the
embedded server runs 1 slot for this step, so each prompt reuses the previous one's prefix (1.5B
judge, K = 3: 0.46 req/s with 1 slot, 0.37 with 2; 0.5B judge, K = 5: 0.97 with either).

Embedded defaults differ from the paper's, for measured reasons: the judge is Qwen-Coder 1.5B
(on 40 labelled SciFact pairs it preferred the relevant passage 31 times, the 0.5B model 19
times, i.e. chance; benchmarks/results/judge_agreement-*.json), and K = 3 (3 pairs, 6 requests
per query) because the 1.5B judge answers about 0.5 requests/s on 2 cores. Pass
--compare-top-k 5 for the paper's 10 pairs.
"""

import argparse
from pathlib import Path

from syntriever.cli import pair_top_k, parse_llm_cli, positive_int, run
from syntriever.data import load_dataset
from syntriever.judge import JUDGE_MODES, ComparisonSettings, run_comparisons
from syntriever.llm.config import summary_text
from syntriever.llm.local import DEFAULT_JUDGE_PRESET
from syntriever.profiles import EMBEDDED, EMBEDDED_JUDGE_SLOTS, JUDGE, PAPER, llm_profile


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("model", help="stage-1 model whose retrieval file to read, e.g. minilm-sft")
    parser.add_argument("dataset")
    parser.add_argument("--compare-top-k", "--k", dest="compare_top_k", type=pair_top_k, default=None,
                        help=f"top passages of each query compared pairwise (default: {JUDGE[PAPER]['k']} as "
                        f"the paper; {JUDGE[EMBEDDED]['k']} embedded)")
    parser.add_argument("--pairs", type=positive_int, default=None,
                        help="first N pairs per query in rank order (default: all C(K,2))")
    parser.add_argument("--judge-mode", choices=JUDGE_MODES, default=None,
                        help="text (paper; remote default) or logprobs (both orders; embedded default)")
    parser.add_argument("--judge-max-chars", type=int, default=None,
                        help=f"truncate passages in the judge prompt (default: none remote, "
                        f"{JUDGE[EMBEDDED]['max_chars']} embedded; 0 = never)")
    parser.add_argument("--judge-max-tokens", type=int, default=None,
                        help="answer length cap (default: 8 text, 6 logprobs)")
    parser.add_argument("--agreeing-only", action="store_true",
                        help="logprobs: drop pairs whose two orders prefer different passages")
    parser.add_argument("--limit", type=positive_int, default=None,
                        help="first N training queries only; writes its own "
                        "<dataset>_preferences.limit<N>.jsonl, never the complete file")
    parser.add_argument("--retrieval-file", type=Path, default=None,
                        help="default: generated/<dataset>/retrieval-<MODEL>.jsonl")
    args, config = parse_llm_cli(
        parser, local_concurrency=EMBEDDED_JUDGE_SLOTS, local_model=DEFAULT_JUDGE_PRESET)
    settings = ComparisonSettings.for_profile(
        llm_profile(config.is_local), k=args.compare_top_k, pairs=args.pairs, judge_mode=args.judge_mode,
        max_chars=args.judge_max_chars, max_tokens=args.judge_max_tokens, agreeing_only=args.agreeing_only,
    )
    if not settings.max_chars:  # --judge-max-chars 0: never truncate
        settings.max_chars = None
    qrels = load_dataset(args.dataset, "train").qrels  # the summary's label check
    out = run_comparisons(args.dataset, args.model, config, settings, args.retrieval_file, args.limit, qrels)
    if out is not None:
        print(summary_text(out))


if __name__ == "__main__":
    run(main)
