"""Probe: does the embedded 1.5B model write a query on ANOTHER subject (v2 hard negatives, step 1)?

    python benchmarks/other_query_probe.py

Reads the first answers of two drafts of the v2 step-1 prompt on SciFact's first training claims
(Qwen-Coder 1.5B, llama-server, temperature 0.7), kept in benchmarks/results/other_query_probe/:
draft 1 asked in one instruction; draft 2 added three examples from other fields (the prompt now in
syntriever/prompts.py). For each new query it prints the share of the claim's content words it
still holds (syntriever.synthesis_quality.coverage; >= 0.5 counts as a variation of the claim),
and for the other answers (CoT, positive) their length and whether they hit the 256-token cap.
Writes benchmarks/results/other_query_probe.json.
"""

import json
from pathlib import Path

from syntriever.cli import run, setup_logging
from syntriever.data import load_dataset
from syntriever.jsonl import read_jsonl, write_json
from syntriever.llm.requests import answer_text, finish_reason
from syntriever.synthesis import other_query_text
from syntriever.synthesis_quality import CLOSE_QUERY_COVERAGE, coverage

FOLDER = Path(__file__).parent / "results" / "other_query_probe"


def main() -> None:
    setup_logging()
    queries = load_dataset("scifact", "train").queries
    report = {}
    for path in sorted(FOLDER.glob("*.results.jsonl")):
        new_queries, others = [], []
        for result in read_jsonl(path):
            qid, kind = result["custom_id"].split(":", 1)
            text = answer_text(result)
            if kind.startswith("negq"):
                new = other_query_text(text)
                new_queries.append({"query_id": qid, "claim": queries[qid], "new_query": new,
                                    "coverage": round(coverage(queries[qid], new), 3)})
            else:
                others.append({"id": result["custom_id"], "words": len(text.split()),
                               "cap_hit": finish_reason(result) == "length"})
        report[path.name.removesuffix(".results.jsonl")] = {
            "new_queries": len(new_queries),
            "variations": sum(q["coverage"] >= CLOSE_QUERY_COVERAGE for q in new_queries),
            "details": new_queries, "other_answers": others,
        }
    write_json(Path(__file__).parent / "results" / "other_query_probe.json", report)
    print(json.dumps({k: {"new_queries": v["new_queries"], "variations": v["variations"]}
                      for k, v in report.items()}, indent=2))


if __name__ == "__main__":
    run(main)
