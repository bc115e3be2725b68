"""Benchmark: where the embedded judge's time goes, and which settings make it faster with the
same answers.

    python benchmarks/judge_throughput.py [--queries N] [--configs a,b] [--llm-model qwen1.5b]

Sends the real stage-2 judge requests (stage2/parse_comparison.py's embedded defaults: log-prob
mode, both orders, K = 3, passages cut to 600 characters) of the first N training queries of the
committed SciFact retrieval file, one at a time as the judge step does (1 slot), to one
llama-server per configuration. All servers run at once (the GGUF file is memory-mapped, so they
share its pages) and the configurations take turns query by query, in a rotating order, so that
machine load falls on all alike. Configurations:

- ``current``: the library's server and requests (the baseline);
- ``current-again``: the same again, on a second server: how far two identical configurations'
  rates differ in one run, the yardstick a "faster" configuration has to clear;
- ``no-prefix-cache``: the same requests with ``cache_prompt: false`` (what prefix reuse saves);
- ``poll0``: ``--poll 0`` (threads sleep instead of spinning while waiting for work);
- ``flash-attn``: ``-fa on``;
- ``gen-1-thread``: one thread for generating the answer tokens (``-t 1``), all cores for the
  prompt (``-tb``): a single-token step waits at every layer for all its threads, which a busy
  machine delays;
- ``max-tokens-4``: answers cut after 4 tokens ("Passage #1" ends at the digit);
- ``chars-1500``, ``whole-passages``: longer passages in the prompt (1,500 characters; no cut),
  to state what the judge's longer reading costs (their answers differ by design).

Per configuration: requests/s, the speed against the baseline (its wall time over this one's, on the
same queries), prompt tokens/s (usage), the server's own split of the time
(prompt processing vs generation, tokens processed vs taken from the cache), and whether the
answers are identical to the baseline's (compact form, and the digit log-prob margins) and to the
committed answers. Writes benchmarks/results/judge_throughput.json, with the machine's load.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import os
import statistics
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from syntriever.cli import run, setup_logging
from syntriever.errors import UserError
from syntriever.jsonl import write_json
from syntriever.judge import (
    ComparisonSettings,
    answers_path,
    attach_texts,
    comparison_dir,
    comparison_requests,
)
from syntriever.llm.config import LLMConfig
from syntriever.llm.local import DEFAULT_JUDGE_PRESET, LocalServer
from syntriever.llm.requests import load_results, result_line, usage
from syntriever.profiles import EMBEDDED
from syntriever.retrieval import load_retrieval, retrieval_path
from syntriever.verdicts import choice_score, compact_answer

OUT = Path(__file__).resolve().parent / "results" / "judge_throughput.json"
PAIRS_MODEL = "minilm-sft"  # the stage-1 model whose top 3 the committed judge answers are of

logger = logging.getLogger("judge_throughput")


@dataclass
class Config:
    """One way of serving the judge: extra server flags and request-body changes."""

    name: str
    server_args: tuple[str, ...] = ()
    body: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)  # ComparisonSettings changes (the prompt)


CONFIGS = (
    Config("current"),
    Config("current-again"),
    Config("no-prefix-cache", body={"cache_prompt": False}),
    Config("poll0", server_args=("--poll", "0")),
    Config("flash-attn", server_args=("-fa", "on")),
    Config("gen-1-thread", server_args=("-t", "1", "-tb", str(os.cpu_count() or 2))),
    Config("max-tokens-4", body={"max_tokens": 4}),
    Config("chars-1500", settings={"max_chars": 1500}),
    Config("whole-passages", settings={"max_chars": None}),
)


def background_load() -> dict[str, Any]:
    """Load average and the other busy processes (command names, CPU share, niceness)."""
    ps = subprocess.run(["ps", "-eo", "pcpu,ni,comm", "--sort=-pcpu"], capture_output=True, text=True)
    busy = [line.split(None, 2) for line in ps.stdout.splitlines()[1:]]
    return {"loadavg_1_5_15": [round(x, 2) for x in os.getloadavg()],
            "busy_processes": [{"cpu_percent": float(c), "nice": n, "command": m}
                               for c, n, m in busy if float(c) >= 5.0][:8]}


def send(base_url: str, request: dict[str, Any], config: Config) -> tuple[dict, float]:
    """One request; its result line (Batch format, with the server's timings) and wall time."""
    body = json.dumps({**request["body"], **config.body}).encode()
    post = urllib.request.Request(f"{base_url}/chat/completions", data=body,
                                  headers={"Content-Type": "application/json"})
    start = time.perf_counter()
    with urllib.request.urlopen(post, timeout=600) as response:
        answer = json.load(response)
    return result_line(request["custom_id"], answer), time.perf_counter() - start


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    wall = sum(r["seconds"] for r in rows)
    prompt_tokens = sum(r["prompt_tokens"] for r in rows)
    timings = [r["timings"] for r in rows if r["timings"]]
    total = lambda key: sum(t.get(key, 0) for t in timings)  # noqa: E731
    return {
        "requests": len(rows), "wall_s": round(wall, 2),
        "requests_per_s": round(len(rows) / wall, 3),
        "prompt_tokens_per_s": round(prompt_tokens / wall, 1),
        "prompt_tokens_per_request": round(prompt_tokens / len(rows), 1),
        "median_request_s": round(statistics.median(r["seconds"] for r in rows), 3),
        "server": {
            "prompt_tokens_processed": total("prompt_n"), "prompt_tokens_from_cache": total("cache_n"),
            "prompt_ms": round(total("prompt_ms")), "generation_ms": round(total("predicted_ms")),
            "generated_tokens": total("predicted_n"),
            "prompt_processing_tokens_per_s": round(1000 * total("prompt_n") / total("prompt_ms"), 1)
            if total("prompt_ms") else None,
            "generation_ms_per_token": round(total("predicted_ms") / total("predicted_n"), 1)
            if total("predicted_n") else None,
        },
    }


def compare(results: dict[str, dict], base: dict[str, dict]) -> dict[str, Any]:
    """How many answers equal the baseline's: compact form, and the digit log-prob margin."""
    same_compact = sum(compact_answer(results[c]) == compact_answer(base[c]) for c in base)
    margins = [(choice_score(results[c]), choice_score(base[c])) for c in base]
    same_margin = sum(a == b for a, b in margins)
    diffs = [abs(a - b) for a, b in margins if a is not None and b is not None]
    return {"identical_compact_answers": same_compact, "identical_digit_margins": same_margin,
            "max_abs_margin_difference": max(diffs) if diffs else None, "of": len(base)}


def make_report(
    configs: list[Config], rows: dict[str, list[dict[str, Any]]], results: dict[str, dict[str, dict]],
    committed: dict[str, dict], blocks: list[list[dict]], llm: LLMConfig, args: argparse.Namespace,
    start: float, load_before: dict[str, Any],
) -> dict[str, Any]:
    """The benchmark's JSON over the queries done so far."""
    base = results[configs[0].name]
    base_seconds = sum(r["seconds"] for r in rows[configs[0].name])
    report = {
        "what": "embedded stage-2 judge, SciFact, K=3, both orders, 600 characters unless a "
                "configuration changes it, 1 slot, "
                "requests one at a time in the library's order (shared prefix consecutive)",
        "llm": llm.provenance(), "threads": args.threads or os.cpu_count(), "queries": len(blocks),
        "benchmark_niceness": os.nice(0), "cpu_cores": os.cpu_count(),
        "requests_per_config": sum(len(b) for b in blocks),
        "alternation": "configurations take turns query by query (6 requests), rotating order",
        "seconds_total": round(time.perf_counter() - start, 1),
        "background_load_before": load_before, "background_load_after": background_load(),
        "configs": {
            c.name: {"server_args": list(c.server_args), "request_changes": c.body,
                     "settings_changes": c.settings,
                     **summarise(rows[c.name]),
                     "speed_vs_current": round(base_seconds / sum(r["seconds"] for r in rows[c.name]), 3),
                     "vs_current": compare(results[c.name], base),
                     "vs_committed": compare({k: results[c.name][k] for k in base if k in committed},
                                             {k: v for k, v in committed.items() if k in base})}
            for c in configs
        },
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--queries", type=int, default=None,
                        help="training queries, 6 requests each (default: one per configuration, so "
                             "each configuration takes each turn once)")
    parser.add_argument("--llm-model", default=DEFAULT_JUDGE_PRESET)
    parser.add_argument("--threads", type=int, default=None, help="server threads (default: all cores)")
    parser.add_argument("--configs", default=",".join(c.name for c in CONFIGS))
    parser.add_argument("--out", type=Path, default=OUT, help=f"result JSON (default: {OUT.name})")
    args = parser.parse_args()
    setup_logging()
    configs = [c for c in CONFIGS if c.name in args.configs.split(",")]
    if not configs:
        raise UserError(f"--configs {args.configs!r} names none of {', '.join(c.name for c in CONFIGS)}")
    args.queries = args.queries or len(configs)
    if args.queries % len(configs):
        # each configuration goes first, second, ... equally often only over whole rotations
        logger.warning(
            "--queries %d is not a multiple of the %d configurations: the turns are not balanced "
            "(use --queries %d)", args.queries, len(configs),
            len(configs) * max(1, round(args.queries / len(configs))))
    settings = ComparisonSettings.for_profile(EMBEDDED)
    llm = LLMConfig(backend="local", model=args.llm_model)
    retrieved = load_retrieval(retrieval_path("scifact", PAIRS_MODEL), PAIRS_MODEL)
    records = attach_texts(retrieved[:args.queries], "scifact", settings.k)
    # per configuration, the requests of each query (a configuration may change the prompt)
    config_blocks = {c.name: [comparison_requests([rec], llm, dataclasses.replace(settings, **c.settings))
                              for rec in records] for c in configs}
    blocks = config_blocks[configs[0].name]  # the baseline's: the report's query and request counts
    load_before = background_load()
    committed = load_results(answers_path(comparison_dir("scifact", llm, PAIRS_MODEL), settings))
    rows: dict[str, list[dict[str, Any]]] = {c.name: [] for c in configs}
    results: dict[str, dict[str, dict]] = {c.name: {} for c in configs}
    start = time.perf_counter()
    with contextlib.ExitStack() as stack:
        servers = {c.name: stack.enter_context(LocalServer(
            model=args.llm_model, parallel=1, threads=args.threads, extra_args=c.server_args))
            for c in configs}
        for index in range(len(blocks)):
            turn = configs[index % len(configs):] + configs[:index % len(configs)]
            for config in turn:
                for request in config_blocks[config.name][index]:
                    res, seconds = send(servers[config.name].base_url, request, config)
                    results[config.name][request["custom_id"]] = res
                    body = res["response"]["body"]
                    rows[config.name].append({"seconds": seconds, "prompt_tokens": usage(res)[0],
                                              "timings": body.get("timings") or {}})
            report = make_report(configs, rows, results, committed, blocks[:index + 1], llm, args, start,
                                 load_before)
            write_json(args.out, report)  # after every query: a stopped run keeps what it measured
            print(f"query {index + 1}/{len(blocks)} done", file=sys.stderr, flush=True)
    print(json.dumps({name: {k: v for k, v in c.items() if k in ("requests_per_s", "prompt_tokens_per_s",
                                                                  "vs_current")}
                      for name, c in report["configs"].items()}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    run(main)
