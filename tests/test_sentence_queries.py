"""benchmarks/sentence_queries.py: which sentence of a passage becomes its query."""

from __future__ import annotations

from tests.helpers import load_benchmark

TITLE = "Diet and weight in mice"
DOC = {"title": TITLE, "text": (
        "BACKGROUND We studied 40 mice over two years in a controlled trial of diet, e.g. fat. "
        "Results were mixed (p = 0.2). "
        "RESULTS: Mice fed fat gained 20% more weight than controls over the whole study. "
        "FUNDING This work was funded by a grant of the national research council of the country. "
        "A last long sentence that the passage cut leaves out of what the model is shown here.")}
TEXT = DOC["text"]


def test_claim_sentences_cut_headings_and_keep_complete_shown_ones() -> None:
    bench = load_benchmark("sentence_queries")
    shown = len(TITLE) + 1 + TEXT.index(" A last long")
    found = bench.claim_sentences(DOC, shown + 20)  # the last sentence is cut short
    assert found == ["We studied 40 mice over two years in a controlled trial of diet, e.g. fat.",
                     "Mice fed fat gained 20% more weight than controls over the whole study."]
    assert bench.claim_sentences({"text": TEXT}, 10_000)[-1].startswith("A last long")
    assert bench.claim_sentences({"title": TITLE, "text": "Too short. Also short."}, 800) == []
    # the LLM saw no text
    assert bench.claim_sentences({"title": "A title longer than the cut", "text": TEXT}, 10) == []


def test_without_heading_cuts_heading_words_only() -> None:
    bench = load_benchmark("sentence_queries")
    assert bench.without_heading("METHODS A MEDLINE search was run.") == (
        ["METHODS"], "A MEDLINE search was run.")
    assert bench.without_heading("MAIN OUTCOME MEASURES: HIV RNA levels.") == (
        ["MAIN", "OUTCOME", "MEASURES"], "HIV RNA levels.")
    assert bench.without_heading("DNA Methylation rises.") == ([], "DNA Methylation rises.")
    assert bench.without_heading("RESULTS") == ([], "RESULTS")  # nothing after it: no heading


def test_pick_sentence_last_random_and_none() -> None:
    bench = load_benchmark("sentence_queries")
    found = bench.claim_sentences(DOC, 10_000)
    assert bench.pick_sentence(found, "d1", "last", 0).startswith("A last long")
    drawn = {bench.pick_sentence(found, f"d{i}", "random", 0) for i in range(60)}
    assert drawn == set(found)  # each passage draws with its own seed
    assert bench.pick_sentence(found, "d1", "random", 0) == bench.pick_sentence(found, "d1", "random", 0)
    assert bench.pick_sentence([], "d1", "random", 0) is None
