"""Stage-1 synthesis: requests, verdict parsing, calibration, records; stage-1 examples."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import pytest

from syntriever.data import BeirDataset, training_queries
from syntriever.errors import UserError
from syntriever.jsonl import DataError, write_jsonl
from syntriever.llm.config import LLMConfig
from syntriever.llm.cost import estimate
from syntriever.stage1 import Stage1Variant, build_examples, load_synthetic
from syntriever.synthesis import (
    SynthesisSettings,
    build_records,
    generation_requests,
    parse_yes_no,
    verification_requests,
    yes_no_margin,
    youden_threshold,
)
from tests.helpers import result

CONFIG = LLMConfig(backend="online", model="test-model", base_url="http://127.0.0.1:9/v1")


def toy_dataset() -> BeirDataset:
    corpus = {f"d{i}": {"title": f"T{i}", "text": f"text {i}"} for i in range(4)}
    queries = {"q1": "claim one", "q2": "claim two", "q3": "claim three"}
    qrels = {"q1": {"d0": 1, "d1": 1}, "q2": {"d2": 1}, "q3": {"d3": 0}}
    return BeirDataset("toy", "train", corpus, queries, qrels)


def text_result(cid: str, text: str) -> dict:
    return result(cid, [(text, {text: -0.1})])


def yes_no_result(cid: str, lp_yes: float | None, lp_no: float | None, text: str = "Yes") -> dict:
    alts = {"Other": -6.0}
    if lp_yes is not None:
        alts["Yes"] = lp_yes
    if lp_no is not None:
        alts["No"] = lp_no
    return result(cid, [(text, alts)])


def test_requests_per_query_and_verification_only_for_generated() -> None:
    queries = training_queries(toy_dataset())
    assert list(queries) == ["q1", "q2"]  # q3 has no relevant passage
    settings = SynthesisSettings(max_tokens_passage=100, max_tokens_cot=50)
    reqs = generation_requests(queries, CONFIG, settings)
    assert [r["custom_id"] for r in reqs] == ["q1:cot", "q1:pos", "q1:neg", "q2:cot", "q2:pos", "q2:neg"]
    assert reqs[0]["body"]["messages"][-1]["content"].endswith("Let's think step by step.")
    assert reqs[1]["body"]["max_tokens"] == 100 and reqs[0]["body"]["max_tokens"] == 50
    assert all(r["body"]["temperature"] == 0.7 for r in reqs)
    generated = {"q1:pos": text_result("q1:pos", "a passage"), "q1:neg": text_result("q1:neg", "  ")}
    ver = verification_requests(queries, generated, CONFIG)
    assert [r["custom_id"] for r in ver] == ["q1:verify-pos"]  # empty or missing texts are not judged
    assert ver[0]["body"]["logprobs"] is True and ver[0]["body"]["temperature"] == 0.0
    assert "a passage" in ver[0]["body"]["messages"][-1]["content"]


@pytest.mark.parametrize(
    ("text", "verdict"),
    [
        ("Yes", "yes"),
        ("no.", "no"),
        ("**No**, it is not", "no"),
        (" YES", "yes"),
        ("Yesterday", "unparseable"),
        ("The passage is relevant", "unparseable"),
        ("", "unparseable"),
        ("Maybe", "unparseable"),
    ],
)
def test_parse_yes_no_never_guesses(text: str, verdict: str) -> None:
    assert parse_yes_no(text) == verdict


def test_yes_no_margin() -> None:
    assert yes_no_margin(yes_no_result("x", -0.2, -2.0)) == pytest.approx(1.8)
    assert yes_no_margin(yes_no_result("x", -0.2, None)) == pytest.approx(-0.2 + 6.0)  # bounded by floor
    assert yes_no_margin(yes_no_result("x", None, None, text="Other")) is None


def test_youden_threshold_separates_and_refuses_empty() -> None:
    cut = youden_threshold([2.0, 3.0, 1.5], [0.5, -1.0, 1.0])
    assert 1.0 < cut < 1.5
    assert youden_threshold([1.0], [1.0]) < 1.0 or youden_threshold([1.0], [1.0]) >= 1.0  # defined
    with pytest.raises(ValueError):
        youden_threshold([], [1.0])


def test_build_records_counts_verdicts_in_both_modes() -> None:
    queries = {"q1": "c1", "q2": "c2", "q3": "c3", "q4": "c4"}
    generated = {
        f"{q}:{k}": text_result(f"{q}:{k}", f"{k} of {q}") for q in queries for k in ("cot", "pos", "neg")
    }
    verified = {
        "q1:verify-pos": yes_no_result("q1:verify-pos", -0.1, -3.0, "Yes"),
        "q1:verify-neg": yes_no_result("q1:verify-neg", -2.0, -0.2, "No"),
        "q2:verify-pos": yes_no_result("q2:verify-pos", -1.5, -0.3, "No"),
        "q2:verify-neg": yes_no_result("q2:verify-neg", -2.5, -0.1, "No"),
        "q3:verify-pos": yes_no_result("q3:verify-pos", None, None, "Other"),
        "q3:verify-neg": yes_no_result("q3:verify-neg", -3.0, -0.1, "No"),
    }  # q4 has no verification: "missing"
    records, summary = build_records(
        queries, generated, verified, CONFIG, SynthesisSettings(verify_mode="text")
    )
    assert [r["verdict"] for r in records] == ["yes", "no", "unparseable", "missing"]
    assert summary["verdicts"] == {"yes": 1, "no": 1, "unparseable": 1, "missing": 1}
    assert summary["relabelled_share"] == 0.5
    assert records[0]["positive"] == "pos of q1" and records[0]["cot"] == "cot of q1"
    records, summary = build_records(
        queries, generated, verified, CONFIG, SynthesisSettings(verify_mode="logprobs")
    )
    threshold = summary["verify_threshold"]
    assert math.isfinite(threshold)
    margins = [r["verification_margin"] for r in records]
    assert margins[2] is None and records[2]["verdict"] == "unparseable"
    assert [r["verdict"] for r in records[:2]] == ["yes" if m > threshold else "no" for m in margins[:2]]
    assert summary["text_verdicts"] == {"yes": 1, "no": 1, "unparseable": 1}


def test_cost_estimate_for_batch_gpt4o() -> None:
    reqs = generation_requests(
        {"q": "x" * 400}, CONFIG, SynthesisSettings(max_tokens_passage=100, max_tokens_cot=100)
    )
    est = estimate(reqs, "gpt-4o", batch=True)
    assert est.requests == 3 and est.max_output_tokens == 300 and est.input_tokens > 300
    assert est.cost_usd == pytest.approx((est.input_tokens * 2.5 + 300 * 10.0) / 1e6 * 0.5)
    assert estimate(reqs, "some-local-model", batch=False).cost_usd is None


def test_given_prices_go_together_and_replace_the_list_price() -> None:
    settings = SynthesisSettings(max_tokens_passage=100, max_tokens_cot=100)
    reqs = generation_requests({"q": "x" * 400}, CONFIG, settings)
    for half in ({"price_in": 2.0}, {"price_out": 8.0}):
        with pytest.raises(UserError, match="--llm-price-in and --llm-price-out go together"):
            LLMConfig(backend="online", model="gpt-4o", **half)
    est = LLMConfig(backend="batch", model="gpt-4o", price_in=1.0, price_out=4.0).estimate(reqs)
    assert est.cost_usd == pytest.approx((est.input_tokens * 1.0 + 300 * 4.0) / 1e6 * 0.5)
    assert LLMConfig(backend="local", model="qwen0.5b").estimate(reqs).cost_usd is None


def write_synthetic(path: Path, rows: list[dict]) -> Path:
    write_jsonl(path, rows)
    return path


def synthetic_row(qid: str, verdict: str, cot: str = "a cot") -> dict:
    return {
        "query_id": qid,
        "cot": cot,
        "positive": f"pos {qid}",
        "negative": f"neg {qid}",
        "verdict": verdict,
    }


def test_load_synthetic_rejects_bad_lines(tmp_path: Path) -> None:
    path = write_synthetic(tmp_path / "s.jsonl", [synthetic_row("q1", "yes"), {"query_id": "q2"}])
    with pytest.raises(DataError, match=r"s\.jsonl:2: synthetic record lacks 'cot'"):
        load_synthetic(path)
    path = write_synthetic(tmp_path / "s.jsonl", [synthetic_row("q1", "perhaps")])
    with pytest.raises(DataError, match=r"s\.jsonl:1: unknown verdict 'perhaps'"):
        load_synthetic(path)


def test_stage1_examples_per_variant(tmp_path: Path, tiny_st_model) -> None:
    ds = toy_dataset()
    path = write_synthetic(
        tmp_path / "s.jsonl", [synthetic_row("q1", "no"), synthetic_row("q2", "unparseable", "")]
    )
    synthetic = load_synthetic(path)
    tiny_st_model.prompts = {"query": "query: ", "document": "passage: "}
    data, counts = build_examples(ds, tiny_st_model, Stage1Variant(), synthetic)
    assert data.column_names == ["query", "positive", "synthetic", "cot", "synthetic_negative", "label"]
    assert data["label"] == [0, 0, -1]  # q1 has two labelled passages, q2 one; q3 none
    assert data["query"][0] == "query: claim one" and data["positive"][0] == "passage: T0 text 0"
    assert data["cot"][2] == "passage: claim two"  # empty CoT falls back to the query, counted
    assert counts == {
        "pairs": 3,
        "skipped_no_synthetic": 0,
        "relabelled": 2,
        "unknown_verdict": 1,
        "empty_cot": 1,
        "empty_synthetic": 0,
        "filtered_negatives": 0,
        "restating_negatives": 0,
    }
    data, _ = build_examples(ds, tiny_st_model, Stage1Variant(use_verification=False), synthetic)
    assert data["label"] == [1, 1, 1]
    data, _ = build_examples(ds, tiny_st_model, Stage1Variant(use_cot=False), synthetic)
    assert data.column_names == ["query", "positive", "synthetic", "synthetic_negative", "label"]
    data, _ = build_examples(ds, tiny_st_model, Stage1Variant(use_synthetic=False), synthetic)
    assert data.column_names == ["query", "positive", "cot"]
    data, counts = build_examples(ds, tiny_st_model, Stage1Variant(False, False), None)
    assert data.column_names == ["query", "positive"] and counts["pairs"] == 3
    only_q1 = {"q1": synthetic["q1"]}
    data, counts = build_examples(ds, tiny_st_model, Stage1Variant(), only_q1, allow_missing=True)
    assert counts["skipped_no_synthetic"] == 1 and len(data) == 2
    assert [
        Stage1Variant(*v).suffix()
        for v in [
            (True, True, True),
            (False, True, True),
            (True, False, True),
            (True, True, False),
            (False, False, True),
        ]
    ] == ["sft", "sft-nocot", "sft-nosyn", "sft-noverify", "labelled"]
    assert json.dumps(counts)  # serialisable for the model card


def test_negative_filters(tmp_path: Path, tiny_st_model) -> None:
    ds = toy_dataset()
    rows = [synthetic_row("q1", "yes"), synthetic_row("q2", "no")]
    rows[0]["negative"] = "Indeed: Claim  ONE. But more."  # contains the query verbatim
    rows[0].update(negative_margin=-3.0, verification_margin=-1.0)  # judge prefers the positive
    rows[1].update(negative_margin=0.5, verification_margin=0.5)  # judge ties: dropped
    synthetic = load_synthetic(write_synthetic(tmp_path / "s.jsonl", rows))
    data, counts = build_examples(ds, tiny_st_model, Stage1Variant(negative_filter="copies"), synthetic)
    assert data["label"] == [[1, 0], [1, 0], [0, 1]] and counts["filtered_negatives"] == 2
    data, counts = build_examples(ds, tiny_st_model, Stage1Variant(negative_filter="judge"), synthetic)
    assert data["label"] == [[1, 1], [1, 1], [0, 0]] and counts["filtered_negatives"] == 1
    assert Stage1Variant(negative_filter="judge").suffix() == "sft-negjudge"
    del rows[1]["negative_margin"]
    synthetic = load_synthetic(write_synthetic(tmp_path / "s.jsonl", rows))
    with pytest.raises(DataError, match="query q2: the judge filter needs negative_margin"):
        build_examples(ds, tiny_st_model, Stage1Variant(negative_filter="judge"), synthetic)
    with pytest.raises(ValueError, match="needs the synthetic passages"):
        Stage1Variant(use_synthetic=False, negative_filter="copies")


def _fake_llm(calls: list[list[str]]):
    """A runner answering every pending request by its kind (``negq``, ``verify-*``, others)."""
    from syntriever.jsonl import JsonlAppender

    def fake_runner(config, requests_path, results_path, *, desc, requests, done):
        calls.append([r["custom_id"] for r in requests if r["custom_id"] not in done])
        with JsonlAppender(results_path) as out:
            for req in (r for r in requests if r["custom_id"] not in done):
                cid, prompt = req["custom_id"], req["body"]["messages"][-1]["content"]
                if cid.endswith(":negq") and "claim three" in prompt:  # a variation, asked again
                    out.append(text_result(cid, "Claim three holds in mice."))
                elif ":negq" in cid:
                    answer = f"**New query:** Statins lower LDL ({cid.split(':')[0]}).\nExtra line."
                    out.append(text_result(cid, answer))
                elif ":verify-" in cid:
                    out.append(yes_no_result(cid, -0.1 if cid.endswith("pos") else -3.0, -2.0))
                else:
                    out.append(text_result(cid, f"answer to: {prompt.splitlines()[-1]}"))
        return object()

    return fake_runner


def test_v2_writes_negatives_in_two_steps_chunk_by_chunk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from syntriever import paths
    from syntriever.jsonl import read_jsonl
    from syntriever.llm import runner as llm_runner
    from syntriever.synthesis import other_query_text, run_synthesis

    calls: list[list[str]] = []
    monkeypatch.setattr(llm_runner, "run_requests", _fake_llm(calls))
    monkeypatch.setattr(paths, "ROOT", tmp_path)
    settings = SynthesisSettings(verify_mode="logprobs", prompt_version="v2", chunk_queries=1)
    out = run_synthesis(toy_dataset(), CONFIG, settings)
    assert out == tmp_path / "generated" / "toy" / "synthesis-v2-test-model" / "toy_synthetic.jsonl"
    # per chunk (one query each): generation, second negative step, verification
    assert calls == [["q1:cot", "q1:pos", "q1:negq"], ["q1:neg"], ["q1:verify-pos", "q1:verify-neg"],
                     ["q2:cot", "q2:pos", "q2:negq"], ["q2:neg"], ["q2:verify-pos", "q2:verify-neg"]]
    records = list(read_jsonl(out))
    assert [r["negative_query"] for r in records] == ["Statins lower LDL (q1).", "Statins lower LDL (q2)."]
    assert records[0]["negative"] == "answer to: Query: Statins lower LDL (q1)."  # written from negq
    assert records[0]["positive"] == "answer to: Query: claim one"
    assert [r["verdict"] for r in records] == ["yes", "yes"] and records[0]["prompt_version"] == "v2"
    summary = json.loads(out.with_suffix(".summary.json").read_text())
    assert summary["quality"]["verifier_auc"] == 1.0 and summary["quality"]["records"] == 2
    assert summary["sent_this_run"]["requests"] == 12
    # a re-run resumes: nothing is sent again
    calls.clear()
    run_synthesis(toy_dataset(), CONFIG, settings)
    assert json.loads(out.with_suffix(".summary.json").read_text())["sent_this_run"]["requests"] == 0
    assert all(not c for c in calls) and list(read_jsonl(out)) == records
    # other caps in the same folder would mix answers and replace the output: refused, nothing sent
    with pytest.raises(UserError, match=r"max_tokens_passage 512 there, 128 now\); run with those, as `"):
        run_synthesis(toy_dataset(), CONFIG, replace(settings, max_tokens_passage=128))
    assert all(not c for c in calls) and list(read_jsonl(out)) == records
    assert other_query_text('  \n"Query: Does X cause Y?"') == "Does X cause Y?"


def test_coverage_filter_drops_negatives_that_restate_the_query() -> None:
    from syntriever.stage1 import keep_negative

    query = "Vitamin D supplementation reduces fracture risk in elderly women."
    negative = "Fracture risk in elderly women falls with vitamin D supplementation."
    record = {"query_id": "q", "negative": negative}
    assert keep_negative(record, query, "copies")  # not verbatim ...
    assert not keep_negative(record, query, "coverage")  # ... but it restates the query
    assert keep_negative({"query_id": "q", "negative": "Statins lower LDL in men."}, query, "coverage")


def test_generation_first_verification_later(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from syntriever import paths
    from syntriever.jsonl import read_jsonl
    from syntriever.llm import runner as llm_runner
    from syntriever.synthesis import run_synthesis

    calls: list[list[str]] = []
    monkeypatch.setattr(llm_runner, "run_requests", _fake_llm(calls))
    monkeypatch.setattr(paths, "ROOT", tmp_path)
    settings = SynthesisSettings(verify_mode="logprobs", prompt_version="v2", verify=False)
    unverified = run_synthesis(toy_dataset(), CONFIG, settings)
    assert unverified.name == "toy_synthetic.unverified.jsonl"  # never the verified file
    assert not any(":verify-" in cid for call in calls for cid in call)
    assert [r["verdict"] for r in read_jsonl(unverified)] == ["missing", "missing"]
    calls.clear()
    settings.verify = True
    out = run_synthesis(toy_dataset(), CONFIG, settings)
    assert calls == [[], [], ["q1:verify-pos", "q1:verify-neg", "q2:verify-pos", "q2:verify-neg"]]
    assert [r["verdict"] for r in read_jsonl(out)] == ["yes", "yes"]
    settings.verify = False  # a later run without verification leaves the verified file alone
    run_synthesis(toy_dataset(), CONFIG, settings)
    assert [r["verdict"] for r in read_jsonl(out)] == ["yes", "yes"]


def test_v2_asks_again_for_a_new_query_that_is_a_variation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from syntriever import paths
    from syntriever.jsonl import read_jsonl
    from syntriever.llm import runner as llm_runner
    from syntriever.synthesis import run_synthesis

    ds = toy_dataset()
    ds.qrels["q3"] = {"d3": 1}
    calls: list[list[str]] = []
    monkeypatch.setattr(llm_runner, "run_requests", _fake_llm(calls))
    monkeypatch.setattr(paths, "ROOT", tmp_path)
    settings = SynthesisSettings(verify_mode="logprobs", prompt_version="v2", verify=False)
    out = run_synthesis(ds, CONFIG, settings)
    assert ["q3:negq-1"] in calls  # only q3's new query kept "claim three": asked again
    retry = json.loads((out.parent / "negq-retry1.requests.jsonl").read_text())
    assert retry["body"]["seed"] == settings.seed + 1
    records = {r["query_id"]: r for r in read_jsonl(out)}
    assert records["q3"]["negative_query"] == "Statins lower LDL (q3)."
    assert records["q3"]["negative_query_answers"] == 2 and records["q1"]["negative_query_answers"] == 1
    assert records["q3"]["negative"] == "answer to: Query: Statins lower LDL (q3)."
    summary = json.loads(out.with_suffix(".summary.json").read_text())
    assert summary["quality"]["negative_queries_close"] == 0.0


class _FixedEncoder:
    """Stands in for a SentenceTransformer: fixed unit vectors per text."""

    prompts = {"query": "", "document": ""}

    def __init__(self, vectors: dict[str, list[float]]) -> None:
        self.vectors = vectors

    def encode(self, texts, **kwargs):
        import torch

        return torch.nn.functional.normalize(torch.tensor([self.vectors[t] for t in texts]), dim=1)


def test_related_negatives_take_the_nearest_other_query_of_the_same_split() -> None:
    from syntriever.stage1 import related_negatives

    corpus = {f"d{i}": {"title": "", "text": f"text {i}"} for i in range(4)}
    queries = {"a": "statins lower cholesterol", "b": "statins lower cholesterol in women",
               "c": "aspirin prevents stroke", "d": "exercise prevents stroke", "e": "coffee and sleep"}
    qrels = {"a": {"d0": 1}, "b": {"d1": 1}, "c": {"d2": 1}, "d": {"d2": 1}, "e": {"d3": 1}}
    train = BeirDataset("toy", "train-nodev", corpus, queries, qrels)
    synthetic = {q: {"positive": f"passage for {q}"} for q in queries}
    synthetic["dev_q"] = {"positive": "a dev query's passage"}  # not in this split: never used
    model = _FixedEncoder({queries["a"]: [1, 0, 0], queries["b"]: [1, -0.05, 0], queries["c"]: [0.9, 0.4, 0],
                           queries["d"]: [0.8, 0.6, 0], queries["e"]: [0, 0, 1]})
    negatives = related_negatives(train, synthetic, model)
    assert negatives["a"] == "passage for c"  # b is nearer but a variation of a (coverage >= 0.5)
    assert negatives["c"] == "passage for a"  # d is nearer but shares c's relevant passage
    assert negatives["e"] != "a dev query's passage"
    assert set(negatives) == set(queries)


def test_v2_without_llm_negatives(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from syntriever import paths
    from syntriever.jsonl import read_jsonl
    from syntriever.llm import runner as llm_runner
    from syntriever.synthesis import run_synthesis

    calls: list[list[str]] = []
    monkeypatch.setattr(llm_runner, "run_requests", _fake_llm(calls))
    monkeypatch.setattr(paths, "ROOT", tmp_path)
    settings = SynthesisSettings(prompt_version="v2", verify=False, negatives=False)
    out = run_synthesis(toy_dataset(), CONFIG, settings)
    assert calls == [["q1:cot", "q1:pos", "q2:cot", "q2:pos"]]
    records = list(read_jsonl(out))
    assert [r["negative"] for r in records] == ["", ""] and "negative_query" not in records[0]


def test_only_queries_of_a_partial_run_restricts_every_variant(tmp_path: Path, tiny_st_model) -> None:
    from syntriever.stage1 import only_queries_of

    ds = toy_dataset()
    path = write_synthetic(tmp_path / "s.jsonl", [synthetic_row("q2", "yes")])
    subset = only_queries_of(ds, path)
    assert set(subset.qrels) == {"q2"} and set(ds.qrels) == {"q1", "q2", "q3"}  # the input is kept
    data, counts = build_examples(subset, tiny_st_model, Stage1Variant(False, False), None)
    assert counts["pairs"] == 1 and data["positive"] == ["T2 text 2"]  # labelled-only on the subset
    data, counts = build_examples(subset, tiny_st_model, Stage1Variant(), load_synthetic(path))
    assert counts["pairs"] == 1 and counts["skipped_no_synthetic"] == 0  # no missing-record error
    with pytest.raises(DataError, match="none of its query_ids"):
        only_queries_of(ds, write_synthetic(tmp_path / "x.jsonl", [synthetic_row("q9", "yes")]))
