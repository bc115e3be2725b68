"""Estimate LLM requests, tokens and OpenAI cost of the method at paper scale, per dataset.

    python benchmarks/paper_scale_cost.py [--model gpt-4o] [--batch]

Counts come from BEIR's training splits (queries with a relevant passage); token sizes are
assumptions stated below (GPT-4o tokenizer, passages of each corpus's typical length), and
output lengths are the paper's 512-token cap for synthesis (typical answers are shorter, so the
synthesis cost is an upper bound). Writes benchmarks/results/paper_scale_cost.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from syntriever.cli import run
from syntriever.jsonl import write_bytes
from syntriever.llm.cost import PRICES_PER_M, usd

# training queries (BEIR train qrels; MS MARCO train), typical passage length in tokens
DATASETS = {
    "msmarco": (502_939, 80),
    "hotpotqa": (85_000, 90),
    "fiqa": (5_500, 200),
    "scifact": (809, 300),
    "nfcorpus": (2_590, 300),
    "nq": (132_803, 120),
    "fever": (109_810, 150),
}
CORPUS = {  # BEIR corpus sizes (passages)
    "msmarco": 8_841_823, "hotpotqa": 5_233_329, "fiqa": 57_638, "scifact": 5_183,
    "nfcorpus": 3_633, "nq": 2_681_468, "fever": 5_416_568,
}
BATCH_REQUESTS = 50_000  # requests per Batch API batch (our runner's split)
PROMPT_OVERHEAD = 60  # template tokens around the query / passages
QUERY_TOKENS = 20
SYNTH_OUT = 512  # cap per generation (CoT, positive, negative)
COMPARE_OUT = 4
PAIRS = 10  # C(5, 2)


def estimate(queries: int, passage: int, price: tuple[float, float], batch: bool) -> dict[str, float]:
    gen_in = 3 * queries * (PROMPT_OVERHEAD + QUERY_TOKENS)
    gen_out = 3 * queries * SYNTH_OUT
    ver_in = 2 * queries * (PROMPT_OVERHEAD + QUERY_TOKENS + SYNTH_OUT)
    ver_out = 2 * queries * 3
    cmp_in = PAIRS * queries * (PROMPT_OVERHEAD + QUERY_TOKENS + 2 * passage)
    cmp_out = PAIRS * queries * COMPARE_OUT
    tokens_in, tokens_out = gen_in + ver_in + cmp_in, gen_out + ver_out + cmp_out
    cost = usd(tokens_in, tokens_out, price, batch)
    return {
        "requests": queries * (3 + 2 + PAIRS),
        "tokens_in": tokens_in,
        "tokens_out": tokens_out,
        "cost": cost,
        "cost_both_orders": cost + usd(cmp_in, 0, price, batch),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--model", default="gpt-4o", choices=sorted(PRICES_PER_M))
    parser.add_argument("--batch", action="store_true", help="Batch API prices (half)")
    parser.add_argument("--tpm", type=float, default=30e6,
                        help="assumed online rate limit, tokens per minute (depends on the account tier)")
    parser.add_argument("--encode-rate", type=float, default=2000.0,
                        help="assumed passages/s per GPU for E5-base at fp16 (measure on your GPU)")
    parser.add_argument("--gpus", type=int, default=1)
    args = parser.parse_args()
    price = PRICES_PER_M[args.model]
    lines = [
        f"Estimated LLM use at paper scale with {args.model} ({'Batch API' if args.batch else 'online'} "
        f"prices ${price[0]}/M in, ${price[1]}/M out{', halved' if args.batch else ''}).",
        "",
        "| dataset | train queries | requests | input tokens | output tokens (cap) | cost "
        "| with both orders |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, (queries, passage) in DATASETS.items():
        e = estimate(queries, passage, price, args.batch)
        lines.append(
            f"| {name} | {queries:,} | {e['requests']:,} | {e['tokens_in'] / 1e6:,.1f} M | "
            f"{e['tokens_out'] / 1e6:,.1f} M | ${e['cost']:,.0f} | ${e['cost_both_orders']:,.0f} |"
        )
    lines += [
        "",
        "Requests per query: 3 generations, 2 verifications, 10 pairwise comparisons (top 5). "
        "Output tokens use the 512-token cap; measured answers are shorter.",
        "",
        f"Expected time. Assumptions, not measurements: online runs at {args.tpm / 1e6:g}M tokens/min "
        f"(the account's rate limit decides); corpus encoding at {args.encode_rate:,.0f} passages/s per "
        f"GPU on {args.gpus} GPU(s) (evaluation and stage-2 retrieval each encode the corpus once per "
        "model). Batch API: every batch may take up to its 24-hour window, and the three LLM steps "
        "(generation, verification, comparisons) run one after another.",
        "",
        "| dataset | corpus | batches (gen / verify / compare) | Batch API upper bound | online at the "
        "rate limit | corpus encoding per model |",
        "|---|---|---|---|---|---|",
    ]
    for name, (queries, passage) in DATASETS.items():
        e = estimate(queries, passage, price, args.batch)
        steps = [-(-n * queries // BATCH_REQUESTS) for n in (3, 2, PAIRS)]
        online_h = (e["tokens_in"] + e["tokens_out"]) / args.tpm / 60
        encode_h = CORPUS[name] / (args.encode_rate * args.gpus) / 3600
        lines.append(
            f"| {name} | {CORPUS[name]:,} | {' / '.join(map(str, steps))} | {sum(steps)} days | "
            f"{online_h:,.1f} h | {encode_h:,.2f} h |"
        )
    text = "\n".join(lines) + "\n"
    write_bytes(Path(__file__).parent / "results" / "paper_scale_cost.md", text.encode())
    print(text)


if __name__ == "__main__":
    run(main)
