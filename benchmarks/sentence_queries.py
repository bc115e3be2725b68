"""Benchmark control, no LLM: one sentence of each sampled corpus passage as its query.

    python benchmarks/sentence_queries.py scifact [--passages N] [--pick random|last]

The passage-query run (datasets/parse_passage_queries.py) has an LLM write one query a passage,
which states the passage's main finding. SciFact's claims often state a detail of their abstract.
This control takes a sentence of the passage itself (the inverse cloze task of Lee et al., 2019,
with the sentence left in the passage, as the evidence sentence is in a real relevant abstract):
queries about details for every sampled passage, at no LLM cost. If training on them does not
reach the evaluated queries that share no relevant passage with a training query, LLM rewrites of
such sentences are unlikely to either. The passages are those of the passage-query run
(same seeded sample) and the file has its format, so ``train_stage1.py --passage-queries`` takes
it. Writes output/sentence-queries/<dataset>_sentence_queries.<pick>.n<N>.jsonl (made again from
the corpus by this command, so it stays out of git) and a summary beside it.
"""

from __future__ import annotations

import argparse
import random
import re
import statistics

from syntriever.cli import run, setup_logging
from syntriever.data import TRAIN_NODEV, load_dataset
from syntriever.jsonl import write_json, write_jsonl
from syntriever.passage_queries import PassageQuerySettings, sample_passages
from syntriever.paths import output_root
from syntriever.provenance import with_commands

SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9(])")
MIN_WORDS, MAX_WORDS = 8, 60  # a claim-sized sentence: no headings, no run-on lists


def sentences(text: str) -> list[str]:
    """The claim-sized sentences of ``text`` (between MIN_WORDS and MAX_WORDS words), in order."""
    return [s.strip() for s in SENTENCE_END.split(text) if MIN_WORDS <= len(s.split()) <= MAX_WORDS]


def pick_sentence(text: str, doc_id: str, pick: str, seed: int) -> str | None:
    """One sentence of ``text``: the last claim-sized one (often the conclusion) or one drawn
    with a seed of its own per passage; None when it has no claim-sized sentence."""
    found = sentences(text)
    if not found:
        return None
    return found[-1] if pick == "last" else random.Random(f"{seed}:{doc_id}").choice(found)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("dataset")
    parser.add_argument("--passages", type=int, default=None,
                        help="passages of the passage-query run's seeded sample (default: the corpus)")
    parser.add_argument("--pick", choices=("random", "last"), default="random")
    parser.add_argument("--seed", type=int, default=PassageQuerySettings.seed)
    args = parser.parse_args()
    setup_logging()
    ds = load_dataset(args.dataset, TRAIN_NODEV)
    doc_ids = sample_passages(ds, args.passages or len(ds.corpus), args.seed)
    records = []
    for doc_id in doc_ids:
        sentence = pick_sentence(ds.corpus[doc_id].get("text", ""), doc_id, args.pick, args.seed)
        if sentence:
            records.append({"doc_id": doc_id, "query": sentence})
    out = output_root() / "sentence-queries" / f"{ds.name}_sentence_queries.{args.pick}.n{len(doc_ids)}.jsonl"
    write_jsonl(out, records)
    summary = {"passages": len(doc_ids), "queries": len(records), "no_sentence": len(doc_ids) - len(records),
               "pick": args.pick, "seed": args.seed, "examples_split": TRAIN_NODEV,
               "median_words": statistics.median(len(r["query"].split()) for r in records) if records else 0}
    write_json(out.with_suffix(".summary.json"), with_commands(summary))
    print(f"{len(records)} sentence queries for {len(doc_ids)} passages: {out}")


if __name__ == "__main__":
    run(main)
