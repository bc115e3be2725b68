"""Benchmark control, no LLM: one sentence of each sampled corpus passage as its query.

    python benchmarks/sentence_queries.py scifact [--passages N] [--pick random|last]
    python benchmarks/sentence_queries.py scifact --doc-ids-from PASSAGE_QUERY_FILE

The passage-query run (datasets/parse_passage_queries.py) has an LLM write one query for each
sampled passage. This control takes a sentence of the passage itself instead (the inverse cloze
task of Lee et al., 2019, the sentence left in the passage as a real relevant abstract holds its
evidence sentence): a query about one of the passage's statements, at no LLM cost. Only sentences
inside the part of the passage the LLM is shown (``PassageQuerySettings.max_chars``) are drawn, so
both see the same text; a leading abstract heading ("RESULTS", "MAIN OUTCOME MEASURES:") is cut
off and funding or registration sentences are left out. The passages are the passage-query run's seeded
sample, or exactly those of a passage-query file (``--doc-ids-from``, a control matched in passages
and pairs). The file has the passage-query format, so ``train_stage1.py --passage-queries`` takes
it. Writes output/sentence-queries/<dataset>_sentence_queries.<pick>.<n<N> | source>.jsonl (made
again from the corpus by this command, so it stays out of git) and a summary beside it.
"""

from __future__ import annotations

import argparse
import random
import statistics
from pathlib import Path

from syntriever.cli import positive_int, run, setup_logging
from syntriever.data import TRAIN_NODEV, load_dataset, passage_text
from syntriever.jsonl import write_json, write_jsonl
from syntriever.meta_text import sentences
from syntriever.passage_queries import PassageQuerySettings, cut, load_passage_queries, sample_passages
from syntriever.paths import output_root
from syntriever.provenance import with_commands

# Words of the structured-abstract headings that open a sentence ("RESULTS", "MAIN OUTCOME
# MEASURES:"); an acronym opening a sentence ("DNA", "HPV 16") is none of them.
HEADING_WORDS = frozenset({
    "ABSTRACT", "AIM", "AIMS", "BACKGROUND", "CONCLUSION", "CONCLUSIONS", "CONTEXT", "DATA", "DESIGN",
    "EVIDENCE", "EXPERIMENTAL", "EXPOSURE", "EXPOSURES", "EXTRACTION", "FINDINGS", "FUNDING",
    "IMPORTANCE", "INTERPRETATION", "INTERVENTION", "INTERVENTIONS", "INTRODUCTION", "LIMITATIONS",
    "MAIN", "MEASURE", "MEASURES", "MEASUREMENTS", "METHOD", "METHODS", "METHODOLOGY", "OBJECTIVE",
    "OBJECTIVES", "OUTCOME", "OUTCOMES", "PARTICIPANTS", "PATIENTS", "PRINCIPAL", "PURPOSE",
    "RATIONALE", "REGISTRATION", "RESULTS", "SELECTION", "SETTING", "SETTINGS", "SIGNIFICANCE",
    "SOURCES", "STUDY", "SUMMARY", "TRIAL"
})
NOT_CLAIMS = frozenset({"FUNDING", "REGISTRATION"})  # heading words of sentences that state no finding
MIN_WORDS, MAX_WORDS = 8, 60  # a claim-sized sentence: no fragments, no run-on lists
CLOSERS = ")]\"'\u201d\u2019"


def without_heading(sentence: str) -> tuple[list[str], str]:
    """The heading words opening ``sentence`` (up to a colon) and the rest of it."""
    words = sentence.split(" ")
    n = 0
    while n < len(words) - 1 and words[n].rstrip(":") in HEADING_WORDS:
        n += 1
        if words[n - 1].endswith(":"):
            break
    return [w.rstrip(":") for w in words[:n]], " ".join(words[n:])


def claim_sentences(doc: dict[str, str], max_chars: int) -> list[str]:
    """The claim-sized (MIN_WORDS to MAX_WORDS words), complete sentences of a corpus record's text
    inside the first ``max_chars`` characters of its passage (:func:`passage_text`, as the LLM is
    shown it), headings cut off."""
    title, passage = (doc.get("title") or "").strip(), passage_text(doc)
    shown = cut(passage, max_chars)
    pieces = sentences(shown[len(title) + 1 if title else 0:])
    if len(shown) < len(passage):  # the last piece runs to the cut: it may be cut short
        pieces = pieces[:-1]
    found = []
    for piece in pieces:
        heading, sentence = without_heading(piece.strip())
        if NOT_CLAIMS.intersection(heading) or not sentence.rstrip(CLOSERS).endswith((".", "!", "?")):
            continue
        if MIN_WORDS <= len(sentence.split()) <= MAX_WORDS:
            found.append(sentence)
    return found


def pick_sentence(found: list[str], doc_id: str, pick: str, seed: int) -> str | None:
    """The last of ``found`` or one drawn with a seed of its own per passage; None for none."""
    if not found:
        return None
    return found[-1] if pick == "last" else random.Random(f"{seed}:{doc_id}").choice(found)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("dataset")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--passages", type=positive_int, default=None,
                       help="passages of the passage-query run's seeded sample (default: the corpus)")
    which.add_argument("--doc-ids-from", type=Path, default=None, metavar="JSONL",
                       help="the passages of this passage-query file instead")
    parser.add_argument("--pick", choices=("random", "last"), default="random")
    parser.add_argument("--seed", type=int, default=PassageQuerySettings.seed)
    args = parser.parse_args()
    setup_logging()
    ds = load_dataset(args.dataset, TRAIN_NODEV)
    if args.doc_ids_from:
        doc_ids = list(dict.fromkeys(doc for _, doc in load_passage_queries(args.doc_ids_from, ds)))
        source = args.doc_ids_from.name.removesuffix(".jsonl")
    else:
        doc_ids = sample_passages(ds, args.passages or len(ds.corpus), args.seed)
        source = f"n{len(doc_ids)}"
    max_chars = PassageQuerySettings.max_chars
    records = []
    for doc_id in doc_ids:
        sentence = pick_sentence(claim_sentences(ds.corpus[doc_id], max_chars), doc_id, args.pick, args.seed)
        if sentence:
            records.append({"doc_id": doc_id, "query": sentence})
    out = output_root() / "sentence-queries" / f"{ds.name}_sentence_queries.{args.pick}.{source}.jsonl"
    write_jsonl(out, records)
    summary = {"passages": len(doc_ids), "queries": len(records), "no_sentence": len(doc_ids) - len(records),
               "pick": args.pick, "seed": args.seed, "max_chars": max_chars, "examples_split": TRAIN_NODEV,
               "median_words": statistics.median(len(r["query"].split()) for r in records) if records else 0}
    write_json(out.with_suffix(".summary.json"), with_commands(summary))
    print(f"{len(records)} sentence queries for {len(doc_ids)} passages: {out}")


if __name__ == "__main__":
    run(main)
