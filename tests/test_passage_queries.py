"""Synthetic queries for corpus passages: sampling, prompts, parsing, resuming, stage-1 pairs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from syntriever import prompts
from syntriever.data import BeirDataset
from syntriever.errors import UserError
from syntriever.jsonl import DataError, JsonlAppender, read_jsonl, write_jsonl
from syntriever.llm.config import LLMConfig
from syntriever.llm.requests import result_line
from syntriever.llm.runner import IncompleteRun
from syntriever.names import has_passage_queries, stage1_args
from syntriever.passage_queries import (
    PassageQuerySettings,
    build_records,
    check_prompt_settings,
    cut,
    example_queries,
    load_passage_queries,
    make_command,
    run_passage_queries,
    sample_passages,
)
from syntriever.stage1 import Stage1Variant, build_examples
from syntriever.tables import PASSAGE_QUERIES_SFT, paper_row

CONFIG = LLMConfig(backend="online", model="test-model", base_url="http://127.0.0.1:9/v1")


def toy_dataset(n_docs: int = 6) -> BeirDataset:
    corpus = {f"d{i}": {"title": f"Title {i}", "text": f"text of passage {i}"} for i in range(n_docs)}
    queries = {"q1": "Aspirin lowers risk.", "q2": "Statins lower LDL.", "q3": "Is X bad?"}
    qrels = {"q1": {"d0": 1}, "q2": {"d1": 1}, "q3": {"d2": 0}}
    return BeirDataset("toy", "train", corpus, queries, qrels)


def answer(cid: str, text: str, finish: str = "stop") -> dict:
    choice = {"index": 0, "finish_reason": finish, "message": {"role": "assistant", "content": text}}
    body = {"choices": [choice],
            "usage": {"prompt_tokens": 50, "completion_tokens": 7}}
    return result_line(cid, body)


def test_sample_is_seeded_and_a_smaller_run_is_the_start_of_a_larger_one() -> None:
    ds = toy_dataset(50)
    big = sample_passages(ds, 20, seed=0)
    assert big == sample_passages(ds, 20, seed=0) and len(set(big)) == 20
    assert sample_passages(ds, 7, seed=0) == big[:7]
    assert sample_passages(ds, 20, seed=1) != big
    assert len(sample_passages(ds, 500, seed=0)) == 50


def test_examples_come_from_labelled_queries_and_name_the_kind() -> None:
    ds = toy_dataset()
    assert sorted(example_queries(ds, 5, seed=0)) == ["Aspirin lowers risk.", "Statins lower LDL."]
    assert prompts.query_kind(["A holds.", "B holds.", "Is C?"]) == "claim"
    assert prompts.query_kind(["is a?", "B", "why c?"]) == "question"
    system, user = prompts.passage_query("Some passage.", ["A holds.", "B holds."])
    assert "- A holds.\n- B holds." in system["content"] and "one new claim" in system["content"]
    assert user["content"].endswith("Claim:") and "Some passage." in user["content"]
    with pytest.raises(UserError):
        example_queries(BeirDataset("toy", "train", {}, {"q": "x"}, {"q": {"d": 0}}), 3, 0)


def test_cut_at_a_word_boundary() -> None:
    assert cut("alpha beta gamma", 100) == "alpha beta gamma"
    assert cut("alpha beta gamma", 12) == "alpha beta"
    assert cut("alpha beta gamma", 10) == "alpha beta"  # the limit falls right at a word's end
    assert cut("abcdefghij", 4) == "abcd"


def test_records_drop_and_count_answers_that_are_not_queries() -> None:
    ds = toy_dataset()
    results = {
        "d0": answer("d0", "Claim: Aspirin lowers the risk of stroke."),
        "d1": answer("d1", "   "),
        "d2": answer("d2", "Title 2 text of passage 2 and on and on", finish="length"),
        "d3": answer("d3", "The passage supports the claim that statins work."),
        "d4": answer("d4", "title 4"),
    }
    records, summary = build_records(ds, list(results), results, CONFIG)
    assert [(r["query_id"], r["doc_id"], r["query"]) for r in records] == [
        ("pq-d0", "d0", "Aspirin lowers the risk of stroke."), ("pq-d4", "d4", "title 4")]
    assert summary["dropped"] == {"empty": 1, "cap_hit": 1, "about_the_passage": 1}
    assert summary["queries"] == 2 and summary["passages"] == 5
    assert summary["quality"]["copies_title"] == 0.5
    assert summary["prompt_tokens"] == 250 and summary["completion_tokens"] == 35


def test_run_resumes_after_a_stop_and_refuses_another_prompt_set_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from syntriever import paths
    from syntriever.llm import runner as llm_runner

    calls: list[list[str]] = []
    budget = {"answers": 4}  # the "LLM" stops after four answers, in the second chunk

    def fake_runner(config, requests_path, results_path, *, desc, requests, done):
        calls.append([r["custom_id"] for r in requests if r["custom_id"] not in done])
        with JsonlAppender(results_path) as out:
            for req in (r for r in requests if r["custom_id"] not in done):
                if budget["answers"] == 0:
                    break
                budget["answers"] -= 1
                out.append(answer(req["custom_id"], f"Finding of {req['custom_id']} holds."))
        return object()

    monkeypatch.setattr(llm_runner, "run_requests", fake_runner)
    monkeypatch.setattr(paths, "ROOT", tmp_path)
    ds = toy_dataset()
    settings = PassageQuerySettings(passages=6, chunk=3)
    with pytest.raises(IncompleteRun):
        run_passage_queries(ds, CONFIG, settings)
    out = tmp_path / "generated/toy/passage-queries-v1-test-model/toy_passage_queries.n6.jsonl"
    assert not out.exists() and [len(c) for c in calls] == [3, 3]
    budget["answers"], calls[:] = 10, []
    assert run_passage_queries(ds, CONFIG, settings) == out
    order = sample_passages(ds, 6, 0)
    assert calls == [[], order[4:]]  # only the two never answered are sent again
    assert [r["query"] for r in read_jsonl(out)] == [f"Finding of {d} holds." for d in order]
    assert json.loads(out.with_suffix(".summary.json").read_text())["sent_this_run"]["requests"] == 2
    calls.clear()  # a smaller run takes the larger run's answers: nothing is sent
    smaller = run_passage_queries(ds, CONFIG, PassageQuerySettings(passages=3, chunk=3))
    assert calls == [[]] and json.loads(smaller.with_suffix(".summary.json").read_text())["queries"] == 3
    with pytest.raises(UserError, match=r"prompt_settings.json: .*max_chars"):
        run_passage_queries(ds, CONFIG, PassageQuerySettings(passages=3, max_chars=50))


def test_load_checks_every_line(tmp_path: Path) -> None:
    ds = toy_dataset()
    path = tmp_path / "pq.jsonl"
    with pytest.raises(DataError, match=r"pq.jsonl: no such file; .*parse_passage_queries.py toy"):
        load_passage_queries(path, ds)
    write_jsonl(path, [{"doc_id": "d1", "query": "Q one."}, {"doc_id": "d9", "query": "Q two."}])
    with pytest.raises(DataError, match=r"pq.jsonl:2: doc_id 'd9' is not in the toy corpus"):
        load_passage_queries(path, ds)
    write_jsonl(path, [{"doc_id": "d1", "query": " "}])
    with pytest.raises(DataError, match=r"pq.jsonl:1: .* 'query'"):
        load_passage_queries(path, ds)
    write_jsonl(path, [])
    with pytest.raises(DataError, match="no passage queries"):
        load_passage_queries(path, ds)
    write_jsonl(path, [{"doc_id": "d1", "query": "Q one."}])
    assert load_passage_queries(path, ds) == [("Q one.", "d1")]


def test_pairs_join_the_labelled_pairs_of_infonce_only(tiny_st_model) -> None:
    ds = toy_dataset()
    labelled = Stage1Variant(use_cot=False, use_synthetic=False)
    data, counts = build_examples(ds, tiny_st_model, labelled, None, passage_queries=[("New claim.", "d5")])
    assert data["query"][-1].endswith("New claim.")
    assert data["positive"][-1].endswith("Title 5 text of passage 5")
    assert len(data) == 3 and counts["pairs"] == 2 and counts["passage_query_pairs"] == 1
    with pytest.raises(UserError, match="--labelled-only"):
        build_examples(ds, tiny_st_model, Stage1Variant(use_synthetic=False), {
            q: {"cot": "c", "positive": "", "negative": "", "verdict": "yes"} for q in ds.queries},
            passage_queries=[("New claim.", "d5")])


def test_a_dry_run_records_no_prompt_set_up_and_a_broken_record_is_named(tmp_path: Path) -> None:
    check_prompt_settings(tmp_path, {"max_chars": 800}, record=False)
    assert not (tmp_path / "prompt_settings.json").exists()
    check_prompt_settings(tmp_path, {"max_chars": 50}, record=True)
    check_prompt_settings(tmp_path, {"max_chars": 50}, record=True)
    with pytest.raises(UserError, match="max_chars"):
        check_prompt_settings(tmp_path, {"max_chars": 800}, record=False)
    (tmp_path / "prompt_settings.json").write_text('{"max_chars": ')
    with pytest.raises(DataError, match=r"prompt_settings.json:1: not JSON"):
        check_prompt_settings(tmp_path, {"max_chars": 50}, record=True)


def test_the_next_command_makes_the_missing_file_and_dev_examples_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "passage-queries-v1-qwen1.5b" / "toy_passage_queries.n500.jsonl"
    assert make_command(path, "toy") == (
        "`python datasets/parse_passage_queries.py toy --passages 500 --llm-model qwen1.5b`")
    assert make_command(tmp_path / "pq.jsonl", "toy") == "`python datasets/parse_passage_queries.py toy`"
    write_jsonl(path, [{"doc_id": "d1", "query": "Q one."}])
    path.with_suffix(".summary.json").write_text(json.dumps({"examples_split": "train"}))
    nodev = BeirDataset("toy", "train-nodev", toy_dataset().corpus, {}, {})
    with pytest.raises(DataError, match=r"summary.json: .* of 'train', which holds dev queries"):
        load_passage_queries(path, nodev)
    assert load_passage_queries(path, toy_dataset()) == [("Q one.", "d1")]  # a train model may
    path.with_suffix(".summary.json").write_text(json.dumps({"examples_split": "train-nodev"}))
    assert load_passage_queries(path, nodev) == [("Q one.", "d1")]
    path.with_suffix(".summary.json").write_text('{\n"examples_split": ')
    with pytest.raises(DataError, match=r"n500.summary.json:2: not JSON .*make it anew with `python"):
        load_passage_queries(path, nodev)


def test_passage_query_names_are_never_default_names_and_get_their_own_rows() -> None:
    assert has_passage_queries("minilm-labelled-pq500-L256-bf16-nodev")
    assert has_passage_queries("minilm-sft-thenlab3-pq500")
    assert not has_passage_queries("minilm-sft-L256-pq") and not has_passage_queries("minilm-sft-qwen1.5b")
    assert stage1_args("minilm-sft-thenlab3-pq500") is None  # not read as --llm-model pq500
    assert stage1_args("minilm-sft-thenlab3") is not None
    assert paper_row("minilm-labelled-pq500-L256-bf16") == PASSAGE_QUERIES_SFT
    assert paper_row("minilm-sft-L256-thenlab3-pq500-bf16-nodev") == f"stage 1, then {PASSAGE_QUERIES_SFT}"
    assert paper_row("minilm-labelled-L256-6ep") != PASSAGE_QUERIES_SFT
