"""benchmarks/sentence_queries.py: which sentence of a passage becomes its query."""

from __future__ import annotations

from tests.helpers import load_benchmark

TEXT = ("Background. We studied 40 mice over two years in a controlled trial of diet. "
        "Results were mixed (p = 0.2). Mice fed fat gained 20% more weight than controls over the study.")


def test_sentences_keeps_claim_sized_ones_in_order() -> None:
    bench = load_benchmark("sentence_queries")
    assert bench.sentences(TEXT) == ["We studied 40 mice over two years in a controlled trial of diet.",
                                     "Mice fed fat gained 20% more weight than controls over the study."]
    assert bench.sentences("Too short. Also short.") == []


def test_pick_sentence_last_random_and_none() -> None:
    bench = load_benchmark("sentence_queries")
    assert bench.pick_sentence(TEXT, "d1", "last", 0).startswith("Mice fed fat")
    drawn = {bench.pick_sentence(TEXT, f"d{i}", "random", 0) for i in range(40)}
    assert drawn == set(bench.sentences(TEXT))  # each passage draws with its own seed
    assert bench.pick_sentence(TEXT, "d1", "random", 0) == bench.pick_sentence(TEXT, "d1", "random", 0)
    assert bench.pick_sentence("No sentence here.", "d1", "random", 0) is None
