"""Benchmark: our online runner vs one-request-at-a-time vs the server driven directly.

    python benchmarks/llm_runners.py [--requests 32] [--max-tokens 64] [--concurrency 8]

One embedded llama-server (the default model), the same requests for each contender:
(a) one request at a time with the openai client, as the authors' scripts do;
(b) our ``online`` runner at the given concurrency (files, retries, fsync'd appends included);
(c) the server driven directly over HTTP at the same concurrency (the engine's own limit).
Writes benchmarks/results/llm_runners-c<concurrency>.json and prints the ratios
(target: b >= 0.9 c, b >= 3 a).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import openai

from syntriever.cli import run, setup_logging
from syntriever.jsonl import write_json, write_jsonl
from syntriever.llm.local import DEFAULT_PRESET, LocalServer
from syntriever.llm.online import run_online
from syntriever.llm.requests import chat_request

TOPICS = ["protein folding", "vitamin D", "insulin", "T cells", "malaria", "statins", "telomeres",
          "gut bacteria", "aspirin", "stem cells", "obesity", "sleep", "smoking", "HIV", "asthma", "BRCA1"]


def requests(n: int, max_tokens: int) -> list[dict]:
    return [
        chat_request(f"b{i}", [{"role": "user", "content": f"Write a short passage about {TOPICS[i % 16]}."}],
                     model="local", temperature=0.0, max_tokens=max_tokens, seed=i)
        for i in range(n)
    ]


def sequential(base_url: str, reqs: list[dict]) -> tuple[float, int]:
    client = openai.OpenAI(base_url=base_url, api_key="none")
    start, tokens = time.perf_counter(), 0
    for req in reqs:
        tokens += client.chat.completions.create(**req["body"]).usage.completion_tokens
    return time.perf_counter() - start, tokens


def direct(base_url: str, reqs: list[dict], concurrency: int) -> tuple[float, int]:
    def one(req: dict) -> int:
        http = urllib.request.Request(base_url + "/chat/completions", data=json.dumps(req["body"]).encode(),
                                      headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(http, timeout=600) as resp:
            return json.loads(resp.read())["usage"]["completion_tokens"]

    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        tokens = sum(pool.map(one, reqs))
    return time.perf_counter() - start, tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--requests", type=int, default=32)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--model", default=DEFAULT_PRESET)
    args = parser.parse_args()
    setup_logging()
    reqs = requests(args.requests, args.max_tokens)
    out: dict[str, dict] = {}
    with LocalServer(model=args.model, parallel=args.concurrency) as server, \
            tempfile.TemporaryDirectory() as tmp:
        direct(server.base_url, reqs[:2], 2)  # warm-up
        req_file = Path(tmp) / "req.jsonl"
        write_jsonl(req_file, reqs)
        seconds, tokens = sequential(server.base_url, reqs)
        out["a_one_at_a_time"] = {"seconds": seconds, "tokens": tokens}
        stats = run_online(req_file, Path(tmp) / "res.jsonl", base_url=server.base_url, api_key=None,
                           concurrency=args.concurrency)
        out["b_online_runner"] = {"seconds": stats.seconds, "tokens": stats.completion_tokens}
        seconds, tokens = direct(server.base_url, reqs, args.concurrency)
        out["c_server_direct"] = {"seconds": seconds, "tokens": tokens}
    for row in out.values():
        row["requests_per_s"] = round(args.requests / row["seconds"], 3)
        row["tokens_per_s"] = round(row["tokens"] / row["seconds"], 2)
        row["seconds"] = round(row["seconds"], 2)
    a, b, c = (out[k]["tokens_per_s"] for k in ("a_one_at_a_time", "b_online_runner", "c_server_direct"))
    report = {
        "model": args.model, "requests": args.requests, "max_tokens": args.max_tokens,
        "concurrency": args.concurrency, "results": out,
        "ratio_b_over_c": round(b / c, 3), "ratio_b_over_a": round(b / a, 3),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    write_json(Path(__file__).parent / "results" / f"llm_runners-c{args.concurrency}.json", report)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    run(main)
