"""Issue 16: bad input never loses a record and never passes silently; expected errors are one
line naming the file (and line) and the command to run next."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from syntriever.data import load_dataset
from syntriever.jsonl import DataError, JsonlAppender, read_jsonl, write_jsonl
from syntriever.llm.local import free_port
from syntriever.llm.online import errors_path, run_online
from syntriever.llm.requests import chat_request, load_results, result_line
from tests.test_data import make_dataset

ROOT = Path(__file__).resolve().parents[1]


def script(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run a project script as a user would (offline), capturing its output."""
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", **(env or {})}
    full_env.pop("SYNTRIEVER_DEBUG", None)
    return subprocess.run([sys.executable, *args], cwd=cwd or ROOT, env=full_env, capture_output=True,
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
    with pytest.raises(DataError, match=rf"{stem}\.jsonl:{lines}: duplicate _id '(d0|q1)' \(first on line 1\)"):
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

