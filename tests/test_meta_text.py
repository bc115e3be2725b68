"""Sentences about the prompt: found, dropped from v2 synthesis records, kept in v1 records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from syntriever import prompts
from syntriever.meta_text import REMOVED, is_meta_text, sentences, without_meta_sentences
from syntriever.stage1 import Stage1Variant, build_examples, load_synthetic
from syntriever.synthesis import SynthesisSettings, build_records
from syntriever.synthesis_quality import quality_report
from tests.test_synthesis import CONFIG, synthetic_row, text_result, toy_dataset, write_synthetic

ROOT = Path(__file__).resolve().parents[1]
V1 = ROOT / "generated" / "scifact" / "synthesis-v1-qwen0.5b"

FIRST = "Bcp1 binds Rpl23 in the cytoplasm of yeast cells (J. F. Smith et al. (2015) used C. elegans too)."
MIDDLE = "This claim is supported by several well-established studies."
SECOND = "Deleting Bcp1 lowered 60S subunit levels by 40%."
END = "These findings provide concrete evidence to support the claim that Bcp1 is a chaperone."
ONLY_META = "The question asks whether Bcp1 is a chaperone. This supports the query."
SCIENCE = ("The patent claims were upheld in 2019. The company claimed a 30% gain, and the claims of "
           "the earlier study were not replicated. Claims data from 2,000 patients were used.")


def test_sentences_join_back_and_keep_abbreviations_initials_and_list_numbers() -> None:
    text = f"{FIRST} {MIDDLE}\n\n1. Mice were used, e.g. nude mice. {END}"
    parts = sentences(text)
    assert "".join(parts) == text
    assert [p.strip() for p in parts] == [FIRST, MIDDLE, "1. Mice were used, e.g. nude mice.", END]


def test_meta_sentences_in_the_middle_and_at_the_end_are_dropped() -> None:
    cleaned, dropped = without_meta_sentences(f"{FIRST} {MIDDLE} {SECOND} {END}")
    assert (cleaned, dropped) == (f"{FIRST} {SECOND}", 2)
    assert not is_meta_text(cleaned) and is_meta_text(f"{SECOND} {END}")
    listed, dropped = without_meta_sentences(f"To support this claim, here are findings:\n\n{SECOND}")
    assert (listed, dropped) == (SECOND, 1)


def test_a_passage_of_meta_sentences_only_becomes_empty() -> None:
    assert without_meta_sentences(ONLY_META) == ("", 2)


def test_claims_in_the_science_sense_are_kept() -> None:
    assert without_meta_sentences(SCIENCE) == (SCIENCE, 0)
    assert not is_meta_text(SCIENCE)


def test_every_prompt_version_has_a_default_and_a_flag_overrides_it() -> None:
    assert set(prompts.DROP_META_SENTENCES) == set(prompts.PROMPT_VERSIONS)
    assert SynthesisSettings(prompt_version="v1").drop_meta_sentences is False
    assert SynthesisSettings(prompt_version="v2").drop_meta_sentences is True
    assert SynthesisSettings(prompt_version="v1", drop_meta_sentences=True).drop_meta_sentences is True


def _generated(kinds: tuple[str, ...]) -> dict:
    texts = {"q1": (f"{FIRST} {MIDDLE} {SECOND} {END}", f"{SECOND} {END}"), "q2": (ONLY_META, SCIENCE),
             "q3": (SECOND, SECOND)}
    out = {f"{q}:cot": text_result(f"{q}:cot", "Let us think.") for q in texts}
    for q, (pos, neg) in texts.items():
        out[f"{q}:pos"], out[f"{q}:neg"] = text_result(f"{q}:pos", pos), text_result(f"{q}:neg", neg)
        if "negq" in kinds:
            out[f"{q}:negq"] = text_result(f"{q}:negq", "Statins lower LDL cholesterol.")
    return out


def test_v2_records_are_cleaned_and_counted_v1_records_are_not() -> None:
    queries = {"q1": "Bcp1 is a chaperone.", "q2": "Bcp1 is a chaperone of Rpl23.", "q3": "Rpl23 is small."}
    settings = SynthesisSettings(prompt_version="v2", verify=False)
    records, summary = build_records(queries, _generated(("negq",)), {}, CONFIG, settings)
    assert records[0]["positive"] == f"{FIRST} {SECOND}" and records[0]["negative"] == SECOND
    assert records[1]["positive"] == "" and records[1]["negative"] == SCIENCE
    assert [r[REMOVED] for r in records] == [{"positive": 2, "negative": 1}, {"positive": 2, "negative": 0},
                                             {"positive": 0, "negative": 0}]
    assert summary[REMOVED] == {
        "positive": {"passages_changed": 2, "sentences_dropped": 4, "passages_emptied": 1},
        "negative": {"passages_changed": 1, "sentences_dropped": 1, "passages_emptied": 0},
    }
    quality = summary["quality"]
    assert quality["meta_text"] == {"positive": 0.0, "negative": 0.0}
    assert quality["meta_text_before_cleaning"] == {"positive": pytest.approx(2 / 3, abs=1e-4),
                                                    "negative": pytest.approx(1 / 3, abs=1e-4)}
    v1, v1_summary = build_records(queries, _generated(()), {}, CONFIG, SynthesisSettings(verify=False))
    assert v1[0]["positive"] == f"{FIRST} {MIDDLE} {SECOND} {END}" and v1[1]["positive"] == ONLY_META
    assert all(REMOVED not in r for r in v1) and v1_summary[REMOVED] is None
    assert v1_summary["quality"]["meta_text"] == v1_summary["quality"]["meta_text_before_cleaning"]
    assert v1_summary["quality"]["meta_text"]["positive"] == pytest.approx(2 / 3, abs=1e-4)


def test_quality_report_before_cleaning_counts_emptied_passages() -> None:
    records = [{"query": "q", "positive": "", "negative": "", REMOVED: {"positive": 2, "negative": 0}},
               {"query": "q", "positive": SECOND, "negative": "", REMOVED: {"positive": 0, "negative": 0}}]
    quality = quality_report(records)
    assert quality["meta_text"]["positive"] == 0.0 and quality["meta_text_before_cleaning"]["positive"] == 0.5
    assert quality["meta_text_before_cleaning"]["negative"] is None


@pytest.mark.skipif(not (V1 / "scifact_synthetic.jsonl").exists(), reason="committed v1 run not present")
def test_committed_v1_records_rebuild_byte_identical() -> None:
    from syntriever.llm.requests import load_results

    committed = (V1 / "scifact_synthetic.jsonl").read_text(encoding="utf-8").splitlines()
    summary = json.loads((V1 / "scifact_synthetic.summary.json").read_text(encoding="utf-8"))
    queries = {r["query_id"]: r["query"] for r in map(json.loads, committed)}
    config = CONFIG.__class__(backend="online", model=summary["llm"]["model"], base_url=CONFIG.base_url)
    records, rebuilt = build_records(queries, load_results(V1 / "generation.results.jsonl"),
                                     load_results(V1 / "verification.results.jsonl"), config,
                                     SynthesisSettings(**summary["settings"]))
    assert [json.dumps(r, ensure_ascii=False) for r in records] == committed
    assert rebuilt["quality"]["meta_text"]["positive"] > 0  # v1 passages with meta sentences kept


def test_stage1_leaves_an_empty_synthetic_positive_out_of_l1(tmp_path: Path, tiny_st_model) -> None:
    rows = [synthetic_row("q1", "yes"), synthetic_row("q2", "yes")]
    rows[1]["positive"] = ""  # emptied: only sentences about the prompt
    synthetic = load_synthetic(write_synthetic(tmp_path / "s.jsonl", rows))
    data, counts = build_examples(toy_dataset(), tiny_st_model, Stage1Variant(), synthetic)
    assert data["label"] == [1, 1, -1] and counts["empty_synthetic"] == 1
