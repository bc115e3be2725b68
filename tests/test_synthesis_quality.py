"""The synthesis quality report, on crafted records."""

from __future__ import annotations

import pytest

from syntriever.synthesis_quality import auc, contains_query, coverage, is_meta_text, quality_report

QUERY = "Vitamin D supplementation reduces fracture risk in elderly women."


def _record(negative: str, **extra) -> dict:
    return {"query": QUERY, "cot": "Let us see.", "positive": "A trial found fewer fractures.",
            "negative": negative, **extra}


def test_coverage_ignores_stop_words_and_case() -> None:
    assert coverage(QUERY, "in ELDERLY women, vitamin D supplementation reduces the fracture risk") == 1.0
    assert coverage(QUERY, "Statins lower cholesterol.") == 0.0
    assert coverage(QUERY, "vitamin d and fracture") == pytest.approx(3 / 8)  # "in" is a stop word
    assert contains_query(QUERY, "Intro. vitamin d  supplementation reduces fracture risk in elderly women")
    assert not contains_query(QUERY, "Vitamin D supplementation reduces risk")


def test_meta_text() -> None:
    assert is_meta_text("The question asks whether vitamin D helps.")
    assert is_meta_text("Sure! Here is a passage about bones.")
    assert not is_meta_text("Vitamin D had no effect on fractures in a cohort of 2,000 women.")


def test_auc_with_ties_and_edges() -> None:
    assert auc([3, 4], [1, 2]) == 1.0
    assert auc([1, 2], [3, 4]) == 0.0
    assert auc([1, 1], [1, 1]) == 0.5
    assert auc([2, 1], [1, 0]) == pytest.approx(0.875)  # pairs: 2>1, 2>0, 1=1 (half), 1>0
    assert auc([], [1]) is None


def test_quality_report_on_crafted_records() -> None:
    records = [
        _record(QUERY, verification_margin=3.0, negative_margin=1.0, verdict="yes",
                finish_reasons={"cot": "length", "positive": "stop", "negative": "stop"}),
        _record("Elderly women: vitamin D supplementation and fracture risk were studied.",
                verification_margin=2.0, negative_margin=2.5, verdict="no",
                finish_reasons={"cot": "length", "positive": "length", "negative": "stop"}),
        _record("The query is about statins in men.", verification_margin=1.0, negative_margin=0.0,
                verdict="yes", finish_reasons={"cot": "stop", "positive": "stop", "negative": "stop"}),
        _record("Statin therapy lowered LDL cholesterol in a trial of 400 men.", verdict="unparseable",
                verification_margin=None, negative_margin=None, finish_reasons={}),
    ]
    q = quality_report(records)  # shares are rounded to 4 places
    assert q["records"] == 4
    assert q["negatives_restating_query"]["share"] == 0.5  # the copy and the paraphrase
    assert q["negatives_restating_query"]["verbatim"] == 0.25
    assert q["cap_hit"]["cot"] == pytest.approx(2 / 3, abs=1e-4) and q["cap_hit"]["negative"] == 0.0
    assert q["meta_text"]["negative"] == 0.25 and q["meta_text"]["positive"] == 0.0
    assert q["median_words"]["negative"] == 9.5  # 9, 10, 7 and 11 words
    assert q["verifier_auc"] == pytest.approx(6.5 / 9, abs=1e-4)  # positives 3,2,1 vs negatives 1,2.5,0
    assert q["relabelled_share"] == pytest.approx(1 / 3, abs=1e-4)
