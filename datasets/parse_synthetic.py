"""Stage 1 data: synthesise CoT queries, relevant and irrelevant passages, then self-verify.

    python datasets/parse_synthetic.py scifact [--limit N] [--llm-backend local|online|batch]

Writes generated/<dataset>/synthesis-<prompt version>-<model>/<dataset>_synthetic.jsonl and a
summary; re-running resumes from the results already written.
"""

import argparse

from syntriever.cli import parse_llm_cli, positive_int, run
from syntriever.data import load_dataset
from syntriever.llm.config import summary_text
from syntriever.profiles import EMBEDDED, PAPER, SYNTHESIS, llm_profile
from syntriever.prompts import PROMPT_VERSION, PROMPT_VERSIONS
from syntriever.synthesis import SynthesisSettings, run_synthesis

PAPER_SYN, EMBEDDED_SYN = SYNTHESIS[PAPER], SYNTHESIS[EMBEDDED]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("dataset")
    parser.add_argument("--limit", type=positive_int, default=None,
                        help="first N training queries only; writes its own "
                        "<dataset>_synthetic.limit<N>.jsonl, never the complete file")
    parser.add_argument("--temperature", type=float, default=None,
                        help=f"sampling temperature (default: {SynthesisSettings.temperature})")
    parser.add_argument("--max-tokens", type=int, default=None,
                        help=f"passage length cap (paper: {PAPER_SYN['max_tokens_passage']}; embedded "
                        f"default: {EMBEDDED_SYN['max_tokens_passage']})")
    parser.add_argument("--max-tokens-cot", type=int, default=None,
                        help=f"CoT length cap (paper: {PAPER_SYN['max_tokens_cot']}; embedded default: "
                        f"{EMBEDDED_SYN['max_tokens_cot']})")
    parser.add_argument("--verify-mode", choices=["text", "logprobs"], default=None,
                        help="verdict from the answer word (paper) or the yes/no log-probability "
                        "margin (embedded default)")
    parser.add_argument("--verify-threshold", type=float, default=None,
                        help="logprobs mode: fixed margin threshold (default: calibrated per run)")
    parser.add_argument("--prompt-version", choices=PROMPT_VERSIONS, default=PROMPT_VERSION,
                        help="v1: the paper's prompts; v2: evidence-giving passages for questions and "
                        "claims, hard negatives in two steps (see syntriever/prompts.py)")
    parser.add_argument("--skip-verification", action="store_true",
                        help="generation only, written to <dataset>_synthetic.unverified.jsonl (every "
                        "verdict 'missing'; train with --no-verify, which reads it while no verified "
                        "file exists); run again without it to add the verification")
    parser.add_argument("--no-negatives", action="store_true",
                        help="v2: no LLM hard negatives (empty 'negative'); stage 1 then takes another "
                        "training query's synthetic positive (train_stage1.py --negatives related)")
    parser.add_argument("--chunk-queries", type=positive_int, default=None,
                        help="online/local: run every step on N queries at a time, so a stopped run "
                        f"leaves complete queries (embedded default: {EMBEDDED_SYN['chunk_queries']})")
    args, config = parse_llm_cli(parser)
    settings = SynthesisSettings.for_profile(
        llm_profile(config.is_local),
        temperature=args.temperature,
        max_tokens_passage=args.max_tokens or None,
        max_tokens_cot=args.max_tokens_cot or None,
        verify_mode=args.verify_mode,
        verify_threshold=args.verify_threshold,
        prompt_version=args.prompt_version,
        verify=not args.skip_verification,
        negatives=not args.no_negatives,
        chunk_queries=args.chunk_queries or None,
    )
    out = run_synthesis(load_dataset(args.dataset, "train"), config, settings, args.limit)
    if out is not None:
        print(summary_text(out))


if __name__ == "__main__":
    run(main)
