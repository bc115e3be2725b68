"""Issue 16: bad input never loses a record and never passes silently; expected errors are one
line naming the file (and line) and the command to run next."""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from syntriever.data import load_dataset
from syntriever.errors import UserError
from syntriever.jsonl import DataError, JsonlAppender, read_jsonl, write_jsonl
from syntriever.llm.local import free_port
from syntriever.llm.online import errors_path, run_online
from syntriever.llm.requests import chat_request, load_results, result_line
from tests.test_data import make_dataset

ROOT = Path(__file__).resolve().parents[1]


def script(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run a project script as a user would (offline), capturing its output."""
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", **(env or {})}
    full_env.pop("SYNTRIEVER_DEBUG", None)
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=full_env, capture_output=True,
                          text=True, timeout=300)


def error_lines(proc: subprocess.CompletedProcess) -> list[str]:
    return [line for line in proc.stderr.splitlines() if line.startswith("error: ")]


# ------------------------------------------------------------------ case 1: torn-tail repair


def answer(cid: str) -> dict:
    return result_line(cid, {"choices": [{"message": {"content": "ok"}, "finish_reason": "stop"}]})


def test_resume_keeps_a_complete_last_record_without_newline(tmp_path: Path) -> None:
    """The exact repro: a results file whose last (complete) record lost its newline, step re-run."""
    requests, results = tmp_path / "gen.requests.jsonl", tmp_path / "gen.results.jsonl"
    write_jsonl(requests, [chat_request(c, [{"role": "user", "content": c}], model="m", temperature=0,
                                        max_tokens=4) for c in ("a", "b", "c")])
    write_jsonl(results, [answer("a"), answer("b")])
    results.write_bytes(results.read_bytes().rstrip(b"\n"))
    assert set(load_results(results)) == {"a", "b"}  # the loader counts b as done
    dead = f"http://127.0.0.1:{free_port()}/v1"
    stats = run_online(requests, results, base_url=dead, api_key=None, max_retries=0)
    assert stats.skipped == 2 and stats.sent == 1 and stats.failed == 1  # only c is (re)sent
    assert [r["custom_id"] for r in read_jsonl(results)] == ["a", "b"]  # b kept, file whole
    assert results.read_bytes().endswith(b"\n")
    # case 9: the failure names the endpoint it could not reach
    (error,) = read_jsonl(errors_path(results))
    assert dead in error["error"]["message"]


def test_appender_still_cuts_a_torn_last_line(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    path.write_text('{"a": 1}\n{"a": 2}\n{"a": 3, "b"')
    with JsonlAppender(path) as out:
        out.append({"a": 4})
    assert [r["a"] for r in read_jsonl(path)] == [1, 2, 4]


# ------------------------------------------------------------------ cases 4, 5, 6: datasets


@pytest.mark.parametrize("score", ["0.5", "2.9", "inf", "-1", "nan"])
def test_qrels_scores_must_be_non_negative_integers(tmp_path: Path, score: str) -> None:
    folder = make_dataset(tmp_path)
    (folder / "qrels" / "test.tsv").write_text(f"query-id\tcorpus-id\tscore\nq1\td0\t1\nq2\td3\t{score}\n")
    with pytest.raises(DataError, match=rf"test\.tsv:3: score '{score}' is not a non-negative integer"):
        load_dataset(folder, "test")


def test_qrels_integral_float_scores_still_load(tmp_path: Path) -> None:
    folder = make_dataset(tmp_path)
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td0\t1.0\nq2\td3\t2\n")
    assert load_dataset(folder, "test").qrels == {"q1": {"d0": 1}, "q2": {"d3": 2}}


@pytest.mark.parametrize("stem", ["corpus", "queries"])
def test_duplicate_ids_are_refused(tmp_path: Path, stem: str) -> None:
    folder = make_dataset(tmp_path)
    path = folder / f"{stem}.jsonl"
    first = path.read_text().splitlines()[0]
    path.write_text(path.read_text() + first.replace('"T0"', '"again"') + "\n")
    lines = len(path.read_text().splitlines())
    message = rf"{stem}\.jsonl:{lines}: duplicate _id '(d0|q1)' \(first on line 1\)"
    with pytest.raises(DataError, match=message):
        load_dataset(folder, "test")


def test_latin1_corpus_names_file_and_line(tmp_path: Path) -> None:
    folder = make_dataset(tmp_path)
    with open(folder / "corpus.jsonl", "ab") as fh:
        fh.write('{"_id": "d9", "text": "caf\u00e9"}\n'.encode("latin-1"))
    with pytest.raises(DataError, match=r"corpus\.jsonl:5: not UTF-8"):
        load_dataset(folder, "test")


@pytest.mark.parametrize(("record", "message"), [
    ({"_id": "d9", "text": ["a", "list"]}, r"corpus\.jsonl:5: 'text' must be a string, found a list"),
    ({"_id": 9, "text": "numeric id"}, r"corpus\.jsonl:5: '_id' must be a string, found a int"),
    ({"_id": "d9", "title": 3, "text": "t"}, r"corpus\.jsonl:5: 'title' must be a string"),
])
def test_non_string_fields_name_file_and_line(tmp_path: Path, record: dict, message: str) -> None:
    folder = make_dataset(tmp_path)
    with open(folder / "corpus.jsonl", "a") as fh:
        fh.write(json.dumps(record) + "\n")
    with pytest.raises(DataError, match=message):
        load_dataset(folder, "test")


def test_dataset_folder_with_unusable_name_fails_before_any_work(tmp_path: Path) -> None:
    folder = make_dataset(tmp_path)
    renamed = folder.rename(tmp_path / "my toy")
    with pytest.raises(ValueError, match=r"invalid dataset .*my toy.*rename it"):
        load_dataset(renamed, "test")


def test_null_text_and_title_still_load(tmp_path: Path) -> None:
    folder = make_dataset(tmp_path)
    with open(folder / "corpus.jsonl", "a") as fh:
        fh.write(json.dumps({"_id": "d9", "title": None, "text": None}) + "\n")
    assert load_dataset(folder, "test").corpus["d9"] == {"title": "", "text": ""}



# ------------------------------------------------------------------ case 2: partial runs


@pytest.fixture
def tmp_generated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Send generated/ to a temporary folder."""
    from syntriever import paths

    root = tmp_path / "generated"
    monkeypatch.setattr(paths, "generated_root", lambda: root)
    return root


def answered_synthesis(ds, config, settings) -> None:  # noqa: ANN001
    """Every generation and verification request of ``ds`` answered in the run folder, as after
    a complete (committed) synthesis run."""
    from syntriever.data import training_queries
    from syntriever.synthesis import generation_requests, run_dir, verification_requests
    from tests.test_synthesis import text_result

    queries = training_queries(ds)
    generated = {r["custom_id"]: text_result(r["custom_id"], f"text of {r['custom_id']}")
                 for r in generation_requests(queries, config, settings)}
    verified = {r["custom_id"]: text_result(r["custom_id"], "Yes")
                for r in verification_requests(queries, generated, config)}
    write_jsonl(run_dir(ds.name, config) / "generation.results.jsonl", generated.values())
    write_jsonl(run_dir(ds.name, config) / "verification.results.jsonl", verified.values())


def test_limited_synthesis_writes_its_own_file(tmp_generated: Path) -> None:
    from syntriever.synthesis import SynthesisSettings, run_synthesis, synthetic_path
    from tests.test_synthesis import CONFIG, toy_dataset

    ds, settings = toy_dataset(), SynthesisSettings()
    answered_synthesis(ds, CONFIG, settings)
    full = run_synthesis(ds, CONFIG, settings)
    assert full == synthetic_path("toy", CONFIG) and len(list(read_jsonl(full))) == 2
    committed = full.read_bytes(), full.with_suffix(".summary.json").read_bytes()
    part = run_synthesis(ds, CONFIG, settings, limit=1)
    assert part is not None and part.name == "toy_synthetic.limit1.jsonl"
    assert [r["query_id"] for r in read_jsonl(part)] == ["q1"]
    assert json.loads(part.with_suffix(".summary.json").read_text())["queries"] == 1
    assert (full.read_bytes(), full.with_suffix(".summary.json").read_bytes()) == committed


@pytest.mark.parametrize("limit", [0, -1])
def test_limit_below_one_is_refused(tmp_generated: Path, limit: int) -> None:
    from syntriever.errors import UserError
    from syntriever.synthesis import SynthesisSettings, run_synthesis, synthetic_path
    from tests.test_synthesis import CONFIG, toy_dataset

    ds, settings = toy_dataset(), SynthesisSettings()
    answered_synthesis(ds, CONFIG, settings)
    run_synthesis(ds, CONFIG, settings)
    with pytest.raises(UserError, match=f"--limit must be at least 1, got {limit}"):
        run_synthesis(ds, CONFIG, settings, limit=limit)
    assert len(list(read_jsonl(synthetic_path("toy", CONFIG)))) == 2


@pytest.mark.parametrize("script_path", ["datasets/parse_synthetic.py", "stage2/parse_comparison.py"])
def test_limit_flag_rejects_zero_and_negatives(script_path: str) -> None:
    args = [script_path, "toy"] if "synthetic" in script_path else [script_path, "m-sft", "toy"]
    for bad in ("0", "-1"):
        proc = script(*args, f"--limit={bad}")
        assert proc.returncode == 2 and f"--limit: must be at least 1, got {bad}" in proc.stderr


def test_limited_comparisons_keep_the_complete_preferences(tmp_generated: Path) -> None:
    from syntriever.judge import (
        ComparisonSettings,
        answers_path,
        comparison_requests,
        preferences_path,
        run_comparisons,
    )
    from syntriever.verdicts import compact_answer
    from tests.test_stage2 import OFFLINE, answer, retrieval_record

    records = [retrieval_record("q1", 2), retrieval_record("q2", 2)]
    write_jsonl(tmp_generated / "toy" / "retrieval-m.jsonl", records)
    settings = ComparisonSettings(k=2, judge_mode="logprobs")
    folder = preferences_path("toy", OFFLINE, "m").parent
    write_jsonl(answers_path(folder, settings), [
        compact_answer(answer(r["custom_id"], "1", -0.2, -1.5 if r["custom_id"].endswith("ab") else -0.3))
        for r in comparison_requests(records, OFFLINE, settings)])
    full = run_comparisons("toy", "m", OFFLINE, settings)
    committed = full.read_bytes(), full.with_suffix(".summary.json").read_bytes()
    assert len(list(read_jsonl(full))) == 2
    part = run_comparisons("toy", "m", OFFLINE, settings, limit=1)
    assert part == preferences_path("toy", OFFLINE, "m", 1) and part.name == "toy_preferences.limit1.jsonl"
    assert [t["query_id"] for t in read_jsonl(part)] == ["q1"]
    assert (full.read_bytes(), full.with_suffix(".summary.json").read_bytes()) == committed


def test_stage1_stops_when_training_queries_lack_synthetic_data(
    tiny_st_model, caplog: pytest.LogCaptureFixture  # noqa: ANN001
) -> None:
    from syntriever.stage1 import Stage1Variant, build_examples
    from tests.test_synthesis import synthetic_row, toy_dataset

    ds, only_q1 = toy_dataset(), {"q1": synthetic_row("q1", "yes")}
    with pytest.raises(DataError, match=r"1 of 2 training queries \(1 labelled pairs; first: q2\) have no "
                                        r"synthetic record in s\.jsonl.*--allow-missing-synthetic"):
        build_examples(ds, tiny_st_model, Stage1Variant(), only_q1, source="s.jsonl")
    data, counts = build_examples(ds, tiny_st_model, Stage1Variant(), only_q1, allow_missing=True)
    assert counts["skipped_no_synthetic"] == 1 and len(data) == 2
    assert "1 of 2 training queries" in caplog.text and "WARNING" in caplog.text.upper()
    # the labelled-only baseline needs no synthetic data at all
    data, _ = build_examples(ds, tiny_st_model, Stage1Variant(False, False), None)
    assert len(data) == 3


# ------------------------------------------------------------------ case 3: --top-k


def test_top_k_zero_is_refused_and_the_result_file_kept(tmp_path: Path) -> None:
    from syntriever.errors import UserError
    from syntriever.evaluation import evaluate_model

    folder, results = make_dataset(tmp_path), tmp_path / "results"
    _, path = evaluate_model("bm25", folder, "test", results_root=results)
    before = path.read_bytes()
    with pytest.raises(UserError, match="--top-k must be at least 1, got 0"):
        evaluate_model("bm25", folder, "test", top_k=0, results_root=results)
    assert path.read_bytes() == before
    proc = script("evaluate.py", "bm25", "toy", "--top-k", "0", env={"SYNTRIEVER_DATA": str(tmp_path)})
    assert proc.returncode == 2 and "--top-k: must be at least 1, got 0" in proc.stderr


# ------------------------------------------------------------------ case 6: files the tool writes


def test_torn_pipeline_manifest_does_not_block_the_plan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from syntriever.pipeline import Pipeline, Step

    monkeypatch.setenv("SYNTRIEVER_OUTPUT", str(tmp_path / "output"))
    out = tmp_path / "out.json"
    out.write_text("{}")
    step = Step("eval x", ["evaluate.py", "x", "toy"], [out])
    pipeline = Pipeline("toy", [step])
    pipeline.manifest_path(step).parent.mkdir(parents=True)
    pipeline.manifest_path(step).write_text('{"step": "eval x", "fingerp')
    (report,) = pipeline.run(plan_only=True)
    assert report.status == "would run"


def test_judge_answer_without_custom_id_names_file_and_line(tmp_path: Path) -> None:
    from syntriever.judge import seed_results

    answers = tmp_path / "comparison-logprobs.answers.jsonl"
    write_jsonl(answers, [answer("q1:a|b:ab"), {"response": {"status_code": 200, "body": {}}}])
    with pytest.raises(DataError, match=r"answers\.jsonl:2: judge answer without a 'custom_id'"):
        seed_results(tmp_path / "comparison-logprobs.results.jsonl", answers)


def test_truncated_embedding_cache_is_re_encoded_and_replaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_st_model, caplog: pytest.LogCaptureFixture  # noqa: ANN001
) -> None:
    import numpy as np

    from syntriever.retrieval import encode_corpus

    monkeypatch.setenv("SYNTRIEVER_CACHE", str(tmp_path / "cache"))
    tiny_st_model.eval()
    corpus = {f"d{i}": {"title": "", "text": f"the cat {i}"} for i in range(5)}
    _, (first,) = encode_corpus(tiny_st_model, corpus)
    (cache,) = (tmp_path / "cache" / "embeddings").glob("*.npy")
    for use_cache in (False, True):  # --no-cache, then a cached run
        cache.write_bytes(cache.read_bytes()[:100])  # truncated
        _, (again,) = encode_corpus(tiny_st_model, corpus, use_cache=use_cache)
        np.testing.assert_allclose(again, first, atol=1e-6)
        np.testing.assert_allclose(np.load(cache), first, atol=1e-6)  # the cache is whole again
    assert "damaged embedding cache" in caplog.text


# ------------------------------------------------------------------ case 7: the next command


def test_untrained_model_names_its_folder_and_training_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from syntriever.encoders import open_encoder
    from syntriever.errors import UserError
    from syntriever.names import train_command

    monkeypatch.setenv("SYNTRIEVER_OUTPUT", str(tmp_path / "output"))
    with pytest.raises(UserError, match=r"no model at .*output/minilm-sft-scifact; train it first: "
                                        r"`python train_stage1\.py minilm scifact`"):
        open_encoder("minilm-sft", "scifact")
    assert train_command("minilm-sft-nocot", "x") == "python train_stage1.py minilm x --no-cot"
    assert train_command("e5-labelled", "x") == "python train_stage1.py e5 x --labelled-only"
    assert train_command("minilm-final-bt", "x") == "python train_stage2.py minilm-sft x --loss bt"
    assert train_command("minilm", "x") is None and train_command("my-model", "x") is None


def test_comparisons_without_retrieval_file_name_the_command(tmp_generated: Path) -> None:
    from syntriever.judge import ComparisonSettings, run_comparisons
    from tests.test_stage2 import OFFLINE

    with pytest.raises(DataError, match=r"retrieval-m-sft\.jsonl: retrieval file not found; make it with "
                                        r"`python retrieval\.py m-sft toy`"):
        run_comparisons("toy", "m-sft", OFFLINE, ComparisonSettings(k=2))


def test_scripts_print_one_line_errors_with_the_next_command(tmp_path: Path) -> None:
    (tmp_path / "output" / "m-sft-toy").mkdir(parents=True)
    (tmp_path / "output" / "m-sft-toy" / "modules.json").write_text("[]")
    env = {"SYNTRIEVER_OUTPUT": str(tmp_path / "output"), "SYNTRIEVER_DATA": str(tmp_path / "data"),
           "SYNTRIEVER_MIRROR": str(tmp_path / "mirror")}
    folder = make_dataset(tmp_path / "data")
    proc = script("train_stage2.py", "m-sft", "toy", env=env)
    (line,) = error_lines(proc)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert ("toy_preferences.jsonl: preferences not found; make them with "
            "`python stage2/parse_comparison.py m-sft toy --llm-model") in line
    proc = script("run_pipeline.py", "nosuch", "--plan", env=env)
    (line,) = error_lines(proc)
    assert proc.returncode == 1 and "would run" not in proc.stderr
    assert "'nosuch': no dataset at" in line and "not one of the BEIR datasets" in line
    assert line.endswith("once fixed, run again: python run_pipeline.py nosuch --plan")
    # a bad data file: one line naming file and line; --debug keeps the traceback
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td0\t1\nq2\td3\t0.5\n")
    proc = script("evaluate.py", "bm25", "toy", env=env)
    (line,) = error_lines(proc)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "test.tsv:3: score '0.5'" in line and line.endswith("run again: python evaluate.py bm25 toy")
    proc = script("evaluate.py", "bm25", "toy", "--debug", env=env)
    assert proc.returncode == 1 and "Traceback" in proc.stderr and "DataError" in proc.stderr


# ------------------------------------------------------------------ case 8: tables


def save_toy_result(
    root: Path, model: str, split: str, queries: int, subfolder: str = "", config: dict | None = None
) -> Path:
    from syntriever.result_files import make_result

    per_query = {f"q{i}": 0.5 for i in range(queries)}
    record = make_result(model, "toy", {"NDCG@10": 0.5}, {"NDCG@10": per_query}, split=split, config=config)
    path = root / "toy" / subfolder / f"{model}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record))
    return path


@pytest.mark.parametrize(("split", "queries"), [("test", 10), ("train", 30)])
def test_table_refuses_rows_of_other_splits_or_query_counts(tmp_path: Path, split: str, queries: int) -> None:
    from syntriever.tables import write_table

    for model in ("bm25", "minilm"):
        save_toy_result(tmp_path, model, "test", 30)
    save_toy_result(tmp_path, "odd", split, queries)
    with pytest.raises(DataError, match=rf"split test, 30 queries; but split {split}, {queries} queries: "
                                        r"odd\.json\).*--allow-mixed"):
        write_table("toy", tmp_path, n_resamples=50)
    assert not (tmp_path / "toy" / "README.md").exists()
    table = write_table("toy", tmp_path, n_resamples=50, allow_mixed=True).read_text()
    assert "`odd`" in table


def test_table_warns_when_rows_were_encoded_with_different_precisions(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from syntriever.tables import write_table

    save_toy_result(tmp_path, "bm25", "test", 30, config={"retriever": "bm25s"})  # encodes nothing
    save_toy_result(tmp_path, "minilm", "test", 30, config={"retriever": "dense exact cosine"})  # old: fp32
    save_toy_result(tmp_path, "minilm-sft", "test", 30,
                    config={"retriever": "dense exact cosine", "precision": "fp32"})
    assert "precision" not in write_table("toy", tmp_path, n_resamples=50).read_text()
    save_toy_result(tmp_path, "e5", "test", 30,
                    config={"retriever": "dense exact cosine", "precision": "bf16"})
    table = write_table("toy", tmp_path, n_resamples=50).read_text()
    note = "mixed encoding precision (bf16: `e5`; fp32: `minilm`, `minilm-sft`)"
    assert table.count(note) == 2  # under the results table and under the paired tests
    assert "--precision fp32" in table and note in caplog.text


def test_table_ignores_dev_results_in_their_subfolder(tmp_path: Path) -> None:
    from syntriever.tables import write_table

    for model in ("bm25", "minilm"):
        save_toy_result(tmp_path, model, "test", 30)
        save_toy_result(tmp_path, model, "dev", 12, subfolder="dev")
    table = write_table("toy", tmp_path, n_resamples=50).read_text()
    assert "split test;" in table and "dev" not in table.split("![]")[0]
    # a baseline that is not a row: refused before the table or the chart is written again
    (tmp_path / "toy" / "ndcg10.png").unlink()
    with pytest.raises(DataError, match=r"--baseline 'minilm-labelled': no result of that model among"):
        write_table("toy", tmp_path, baseline="minilm-labelled", n_resamples=50)
    assert not (tmp_path / "toy" / "ndcg10.png").exists()
    assert "(baseline)" in write_table("toy", tmp_path, baseline="minilm", n_resamples=50).read_text()


# ------------------------------------------------------------------ case 9: smaller ones


def test_download_copy_that_fails_validation_says_how_to_start_again(tmp_path: Path) -> None:
    mirror = tmp_path / "mirror"
    folder = make_dataset(mirror)
    with open(folder / "corpus.jsonl", "a") as fh:
        fh.write("{broken\n")
    env = {"SYNTRIEVER_DATA": str(tmp_path / "data"), "SYNTRIEVER_MIRROR": str(mirror)}
    for _ in range(2):  # the kept copy fails the same way, and says so again
        proc = script("datasets/download.py", "toy", "--copy", env=env)
        (line,) = error_lines(proc)
        assert proc.returncode == 1 and "corpus.jsonl:5: malformed JSON" in line
        assert f"delete the folder (`rm -r {tmp_path / 'data' / 'toy'}`)" in line
        assert "`python datasets/download.py toy` again" in line


def test_dry_run_prices_the_verification_too(tmp_generated: Path, caplog: pytest.LogCaptureFixture) -> None:
    from dataclasses import replace

    from syntriever.synthesis import SynthesisSettings, run_synthesis
    from tests.test_synthesis import CONFIG, toy_dataset

    caplog.set_level("INFO")
    settings = SynthesisSettings(max_tokens_passage=64)
    assert run_synthesis(toy_dataset(), replace(CONFIG, dry_run=True), settings) is None
    assert "synthesis: 6 of 6 requests to run" in caplog.text
    assert "verification (after the generation): 4 requests, passages at their 64-token cap" in caplog.text


def test_errors_files_are_ignored_by_git() -> None:
    path = "generated/scifact/synthesis-v1-qwen0.5b/generation.results.errors.jsonl"
    proc = subprocess.run(["git", "check-ignore", "-q", path], cwd=ROOT)
    assert proc.returncode == 0


def test_error_line_is_one_line_and_names_the_rerun() -> None:
    from syntriever.cli import error_line

    line = error_line(DataError("x.tsv:3: bad\nscore"), ["evaluate.py", "bm25", "my data"])
    assert line == "error: x.tsv:3: bad score; once fixed, run again: python evaluate.py bm25 'my data'"
    assert error_line(DataError("f: missing; make it with `python a.py`"), ["b.py"]).endswith("`python a.py`")
    url = "https://user:s3cretpw@host/v1?api-key=abcd1234"
    argv = ["datasets/parse_synthetic.py", "--llm-base-url", url]
    line = error_line(DataError(f"{url}: unreachable"), argv)
    assert "s3cretpw" not in line and "abcd1234" not in line and line.count("***") == 4


def test_ctrl_c_ends_a_script_with_one_line_naming_the_command_to_resume(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from syntriever.cli import run

    def interrupted() -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(sys, "argv", ["parse_passage_queries.py", "scifact"])
    monkeypatch.delenv("SYNTRIEVER_DEBUG", raising=False)
    monkeypatch.setenv("SYNTRIEVER_NESTED", "1")  # a stale mark (not the parent's pid) is no mark
    with pytest.raises(SystemExit) as stop:
        run(interrupted)
    assert stop.value.code == 130
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("interrupted;")
    assert err.rstrip().endswith(": python parse_passage_queries.py scifact")
    assert os.environ["SYNTRIEVER_NESTED"] == "1"  # restored after the run
    monkeypatch.setenv("SYNTRIEVER_DEBUG", "1")
    with pytest.raises(KeyboardInterrupt):
        run(interrupted)


def test_ctrl_c_under_a_parent_script_prints_the_parents_line_only(tmp_path: Path) -> None:
    child = tmp_path / "child.py"
    child.write_text("from syntriever.cli import run\n\n"
                     "def main():\n    raise KeyboardInterrupt\n\nrun(main)\n")
    parent = tmp_path / "parent.py"
    parent.write_text(
        "import subprocess, sys\nfrom syntriever.cli import run\n\ndef main():\n"
        f"    code = subprocess.run([sys.executable, {str(child)!r}], check=False).returncode\n"
        "    assert code == 130, code\n    raise KeyboardInterrupt\n\nrun(main)\n")
    proc = script(str(parent), env={"PYTHONPATH": str(ROOT)})
    assert proc.returncode == 130, proc.stderr[-500:]
    lines = [line for line in proc.stderr.splitlines() if line.startswith("interrupted;")]
    assert len(lines) == 1 and lines[0].endswith("parent.py"), proc.stderr[-500:]


def test_stage1_refuses_passage_queries_without_a_pq_name_or_an_infonce_phase() -> None:
    base = ["train_stage1.py", "minilm", "scifact", "--passage-queries", "missing.jsonl"]
    unnamed = script(*base, "--labelled-only", "--output-name", "minilm-labelled-L256")
    assert unnamed.returncode != 0
    assert any("-pq<N>" in line for line in error_lines(unnamed)), unnamed.stderr[-500:]
    no_infonce = script(*base, "--output-name", "minilm-sft-pq500")
    assert no_infonce.returncode != 0
    assert any("--labelled-only or --then-labelled" in line for line in error_lines(no_infonce))


def test_stage1_no_verify_falls_back_to_the_unverified_file_only_without_a_verified_one(
    tmp_generated: Path,
) -> None:
    import train_stage1
    from syntriever.llm.config import LLMConfig
    from syntriever.stage1 import synthetic_input
    from syntriever.synthesis import synthetic_path

    parser = train_stage1.build_parser()
    config = LLMConfig(model="qwen1.5b")
    verified = synthetic_path("scifact", config, "v2")
    unverified = synthetic_path("scifact", config, "v2", verified=False)
    flags = ["minilm", "scifact", "--prompt-version", "v2", "--llm-model", "qwen1.5b"]

    def chosen(*extra: str) -> Path:
        args = parser.parse_args([*flags, *extra])
        variant = train_stage1.variant_of(args)
        return synthetic_input(args.dataset, variant, args.llm_model, args.prompt_version, args.synthetic)

    make = "`python datasets/parse_synthetic.py scifact --llm-model qwen1.5b --prompt-version v2"
    with pytest.raises(DataError, match=re.escape(f"{verified}: synthetic data not found; make it "
                                                  f"with {make} --skip-verification`")):
        chosen("--no-verify")
    with pytest.raises(DataError, match=re.escape(f"{make}`")):
        chosen()
    unverified.parent.mkdir(parents=True)
    unverified.write_text("")
    assert chosen("--no-verify") == unverified
    with pytest.raises(DataError, match=r"not verified yet .* or train with --no-verify"):
        chosen()  # the verification needs the verified file
    with pytest.raises(DataError, match=r"not verified yet .*`$"):
        chosen("--no-verify", "--filter-negatives", "judge")  # the judge filter reads its margins
    verified.write_text("")
    assert chosen("--no-verify") == verified
    assert chosen("--no-verify", "--synthetic", str(verified)) == verified
    with pytest.raises(DataError, match="x.jsonl: synthetic data not found"):
        chosen("--synthetic", "x.jsonl")


def test_seed_pool_refuses_passage_queries_without_the_overlap_groups() -> None:
    proc = script("benchmarks/seed_pool.py", "x", "a.json:b.json", "--by-passage-queries", "pq.jsonl")
    assert proc.returncode == 1
    assert error_lines(proc) == [
        "error: --by-passage-queries splits the --by-train-overlap groups: give both; once fixed, run again: "
        "python benchmarks/seed_pool.py x a.json:b.json --by-passage-queries pq.jsonl"]



def test_seed_pool_refuses_a_pair_of_two_splits_and_a_name_outside_its_folder(tmp_path: Path) -> None:
    dev = save_toy_result(tmp_path, "minilm", "dev", 12, subfolder="dev")
    test = save_toy_result(tmp_path, "minilm", "test", 12)
    proc = script("benchmarks/seed_pool.py", "x", f"{dev}:{test}")
    assert proc.returncode == 1 and "is of toy dev" in proc.stderr and "of toy test: pair" in proc.stderr
    proc = script("benchmarks/seed_pool.py", "../../x", f"{dev}:{dev}")
    assert proc.returncode == 2 and "invalid report name '../../x'" in proc.stderr
    proc = script("benchmarks/seed_pool.py", "x", f"{dev}:")
    assert proc.returncode == 1 and "give RESULT:BASE_RESULT, two result files" in proc.stderr


def test_a_broken_card_or_summary_beside_an_output_names_file_line_and_fix(tmp_path: Path) -> None:
    """Cards and summaries are committed: a merge conflict in one gives the one-line error, not a
    traceback, wherever the library reads it."""
    from syntriever.judge import ComparisonSettings, earlier_runs
    from syntriever.provenance import command_chain
    from syntriever.training import check_overwrite

    conflict = '{\n<<<<<<< HEAD\n  "stage": 1\n=======\n  "stage": 2\n>>>>>>> other\n}\n'
    model = tmp_path / "m-sft-toy"
    model.mkdir()
    (model / "modules.json").write_text("[]")
    (model / "syntriever.json").write_text(conflict)
    with pytest.raises(DataError, match=r"m-sft-toy/syntriever\.json:2: not JSON .*--overwrite"):
        check_overwrite(model, {"stage": 1})
    with pytest.raises(DataError, match=r"syntriever\.json:2: not JSON .*its command"):
        command_chain({"model_path": str(model), "command": "python train_stage2.py m-sft toy"})
    summary = tmp_path / "toy_preferences.summary.json"
    summary.write_text(conflict)
    with pytest.raises(DataError, match=r"toy_preferences\.summary\.json:2: not JSON .*answers are kept"):
        earlier_runs(summary, ComparisonSettings())


def test_an_unknown_embedded_llm_is_refused_before_anything_is_written(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from syntriever.llm.config import add_llm_args, config_from_args
    from syntriever.retrieval import load_retrieval

    for var in ("OPENAI_API_KEY", "SYNTRIEVER_LLM_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    parser = argparse.ArgumentParser()
    add_llm_args(parser)
    with pytest.raises(UserError, match=r"'nosuchllm' is neither an embedded model \(qwen0.5b, qwen1.5b\)"):
        config_from_args(parser.parse_args(["--llm-model", "nosuchllm", "--dry-run"]))
    assert config_from_args(parser.parse_args(["--llm-model", "qwen1.5b"])).model == "qwen1.5b"
    # a retrieval file the judge would read: empty, a query twice, a passage twice in a ranking
    folder = tmp_path / "toy"
    folder.mkdir()
    path = folder / "retrieval-m-sft.jsonl"
    row = {"query_id": "q1", "query": "x", "doc_ids": ["d1", "d2"], "scores": [0.9, 0.8], "texts": []}
    path.write_text("")
    with pytest.raises(DataError, match=r"no retrieval records; .*`python retrieval.py m-sft toy`"):
        load_retrieval(path)
    path.write_text(json.dumps(row) + "\n" + json.dumps(row) + "\n")
    with pytest.raises(DataError, match=r"retrieval-m-sft.jsonl:2: query 'q1' twice"):
        load_retrieval(path)
    path.write_text(json.dumps({**row, "doc_ids": ["d1", "d1"]}) + "\n")
    with pytest.raises(DataError, match=r"retrieval-m-sft.jsonl:1: .* a passage twice"):
        load_retrieval(path)
    hub = folder / "retrieval-org__m.jsonl"  # a hub model's file: the hint names the model, not the file
    hub.write_text("")
    with pytest.raises(DataError, match=r"`python retrieval.py org/m toy`"):
        load_retrieval(hub, "org/m")


def test_training_flags_refuse_numbers_that_would_train_nothing_or_diverge(
        capsys: pytest.CaptureFixture[str]) -> None:
    from syntriever.cli import add_train_args

    parser = argparse.ArgumentParser()
    add_train_args(parser, "paper")
    for flag, bad in (("--epochs", "-1"), ("--epochs", "0"), ("--epochs", "nan"), ("--batch-size", "0"),
                      ("--lr", "-1"), ("--warmup-steps", "-5"), ("--max-seq-length", "0"),
                      ("--max-steps", "0"), ("--weight-decay", "-1")):
        with pytest.raises(SystemExit):
            parser.parse_args([flag, bad])
        assert f"argument {flag}: must be" in capsys.readouterr().err
    args = parser.parse_args(["--epochs", "0.5", "--warmup-steps", "0", "--weight-decay", "0"])
    assert (args.epochs, args.warmup_steps, args.weight_decay) == (0.5, 0, 0.0)


def test_training_refuses_an_output_folder_it_cannot_write_before_training(tmp_path: Path) -> None:
    from syntriever.training import check_writable

    check_writable(tmp_path / "output")  # made when missing, and nothing left in it
    assert list((tmp_path / "output").iterdir()) == []
    (tmp_path / "file").write_text("")
    with pytest.raises(UserError, match=r"file/output: cannot write the model there .*SYNTRIEVER_OUTPUT"):
        check_writable(tmp_path / "file" / "output")


def test_the_pipeline_refuses_what_would_fail_hours_in_at_its_start() -> None:
    for flags, message in ((["--compare-top-k", "1"], "--compare-top-k/--k: must be at least 2, got 1"),
                           (["--judge-model", "nosuch", "--llm-backend", "local"],
                            "LLM 'nosuch' is neither an embedded model")):
        proc = script("run_pipeline.py", "nosuchdataset", *flags, "--plan")
        assert proc.returncode in (1, 2) and message in proc.stderr and "would run" not in proc.stderr


def test_preferences_given_as_is_are_about_training_queries_and_two_passages(tmp_path: Path) -> None:
    from syntriever.stage2 import load_preferences

    row = {"query_id": "q1", "query": "x", "winner_id": "d1", "loser_id": "d2", "winner": "a", "loser": "b"}
    path = tmp_path / "toy_preferences.jsonl"
    write_jsonl(path, [row, {**row, "loser_id": "d1"}])
    with pytest.raises(DataError, match=r"toy_preferences.jsonl:2: passage 'd1' is preferred to itself"):
        load_preferences(path)
    write_jsonl(path, [row, {**row, "query_id": "t9"}])
    with pytest.raises(DataError, match=r"toy_preferences.jsonl:2: query 't9' is not a query of the"):
        load_preferences(path, {"q1", "q2"})
    assert len(load_preferences(path)) == 2  # without the split's queries, only the records are checked


def test_a_result_line_of_the_wrong_shape_is_no_result_and_is_asked_again(tmp_path: Path) -> None:
    def body(choice: object) -> dict:
        return {"choices": [choice], "usage": {"prompt_tokens": 1, "completion_tokens": 1}}

    digit = {"token": "1", "logprob": -0.1, "top_logprobs": [{"token": "2", "logprob": -2.0}]}
    good = {"message": {"content": "Passage #1"}, "logprobs": {"content": [{"token": "Pass"}, digit]}}
    lines = {"good": body(good), "empty": body({"message": {"content": None}}),
             "choices-str": {"choices": "x"}, "content-int": body({"message": {"content": 123}}),
             "logprobs-str": body({**good, "logprobs": "x"}),
             "logprob-str": body({**good, "logprobs": {"content": [{"token": "1", "logprob": "high"}]}}),
             "entry-null": body({**good, "logprobs": {"content": [None]}}),
             "top-str": body({**good, "logprobs": {"content": [{"token": "1", "logprob": -1.0,
                                                                 "top_logprobs": [{"token": "2"}]}]}})}
    path = tmp_path / "x.results.jsonl"
    write_jsonl(path, [result_line(cid, b) for cid, b in lines.items()])
    assert sorted(load_results(path)) == ["empty", "good"]


def test_devices_are_checked_when_parsed(capsys: pytest.CaptureFixture[str]) -> None:
    import torch

    from syntriever.cli import add_search_args

    parser = argparse.ArgumentParser()
    add_search_args(parser)
    assert parser.parse_args(["--devices", "cpu,cpu"]).devices == ["cpu", "cpu"]
    missing = f"cuda:{torch.cuda.device_count()}"  # one past the last GPU, on any machine
    for bad, message in (("bogus:7", "'bogus:7' is not a device"), (missing, f"{missing}: this machine has")):
        with pytest.raises(SystemExit):
            parser.parse_args(["--devices", bad])
        assert message in capsys.readouterr().err


def test_make_dev_split_names_the_download_for_a_missing_dataset(tmp_path: Path) -> None:
    proc = script("datasets/make_dev_split.py", "nosuchds", env={"SYNTRIEVER_DATA": str(tmp_path)})
    (line,) = error_lines(proc)
    assert proc.returncode == 1 and "nosuchds: no dataset there; fetch it with" in line
    assert "`python datasets/download.py nosuchds`" in line


def test_the_judge_is_not_asked_about_a_query_outside_the_training_split(tmp_path: Path) -> None:
    from syntriever.judge import ComparisonSettings, run_comparisons
    from syntriever.llm.config import LLMConfig

    path = tmp_path / "toy" / "retrieval-m-sft.jsonl"
    path.parent.mkdir()
    rows = [{"query_id": q, "query": "x", "doc_ids": ["d1", "d2"], "scores": [0.9, 0.8], "texts": []}
            for q in ("q1", "NOSUCHQ")]
    write_jsonl(path, rows)
    config = LLMConfig(backend="online", model="judge-test", base_url="http://127.0.0.1:9/v1", dry_run=True)
    with pytest.raises(DataError, match=r"retrieval-m-sft.jsonl: query 'NOSUCHQ' is not a training query"):
        run_comparisons("toy", "m-sft", config, ComparisonSettings(k=2), path, qrels={"q1": {"d1": 1}})


def test_a_synthetic_file_holds_one_text_record_per_query(tmp_path: Path) -> None:
    from syntriever.stage1 import load_synthetic

    row = {"query_id": "q1", "cot": "c", "positive": "p", "negative": "n", "verdict": "yes"}
    path = tmp_path / "toy_synthetic.jsonl"
    text = r":1: query_id, cot, positive and negative must be text"
    for rows, message in (([row, row], r":2: query 'q1' has a record already"),
                          ([{**row, "query_id": 15}], text), ([{**row, "positive": None}], text)):
        write_jsonl(path, rows)
        with pytest.raises(DataError, match=message):
            load_synthetic(path)
    write_jsonl(path, [row, {**row, "query_id": "q2", "negative": ""}])  # v2 --no-negatives: empty
    assert list(load_synthetic(path)) == ["q1", "q2"]


def test_a_margin_needs_alternatives_to_compare_with() -> None:
    from syntriever.llm.requests import logprob_margin

    assert logprob_margin({"1": -0.1}, ["1"], ["2"]) is None  # top_logprobs null: unparseable, not ~0
    assert logprob_margin({"1": -0.1, "x": -3.0}, ["1"], ["2"]) == pytest.approx(2.9)
    assert logprob_margin({"1": -0.1, "2": -2.0}, ["1"], ["2"]) == pytest.approx(1.9)
