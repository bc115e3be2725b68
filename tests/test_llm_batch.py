"""The Batch API runner against a local fake of the Files/Batches API backed by the real llama.cpp
server: completion, expiry with partial output, resuming, permanent errors and key hygiene."""

from __future__ import annotations

import json
import logging
import traceback
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from syntriever.jsonl import read_jsonl, write_jsonl
from syntriever.llm import batch as batch_module
from syntriever.llm.batch import BatchRunError, run_batch, state_path
from syntriever.llm.config import LLMConfig
from syntriever.llm.local import LocalServer
from syntriever.llm.online import errors_path
from syntriever.llm.requests import answer_text, chat_request
from tests.fake_openai import FakeOpenAI

pytestmark = pytest.mark.llm

KEY = "sk-fake-expected-key-0000"
SECRET = "sk-test-SECRET-0123456789abcdef"
TOPICS = ["the sun", "rivers", "cats", "trees", "the moon", "bread", "snow", "music", "iron", "salt"]


@pytest.fixture(scope="module")
def upstream(llama_server_bin: Path) -> Iterator[str]:
    """One embedded llama.cpp server (2 slots) for the whole module."""
    with LocalServer(model="qwen0.5b", parallel=2) as server:
        yield server.base_url


@pytest.fixture
def fake(upstream: str) -> Iterator[FakeOpenAI]:
    with FakeOpenAI(upstream, api_key=KEY) as server:
        yield server


@pytest.fixture
def env_key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.delenv("SYNTRIEVER_LLM_API_KEY", raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    return KEY


def make_requests(folder: Path, n: int) -> tuple[Path, Path, list[str]]:
    """``n`` tiny deterministic chat requests; (requests path, results path, custom_ids)."""
    requests = [
        chat_request(
            f"q{i}", [{"role": "user", "content": f"Name one word about {TOPICS[i % len(TOPICS)]}."}],
            model="qwen0.5b", temperature=0.0, max_tokens=8,
        )
        for i in range(n)
    ]
    req_path = folder / "gen.requests.jsonl"
    write_jsonl(req_path, requests)
    return req_path, folder / "gen.results.jsonl", [r["custom_id"] for r in requests]


def config_for(fake: FakeOpenAI) -> LLMConfig:
    return LLMConfig(backend="batch", model="qwen0.5b", base_url=fake.base_url, poll_interval=0.2)


def result_ids(path: Path) -> Counter[str]:
    return Counter(row["custom_id"] for row in read_jsonl(path))


def test_large_runs_are_split_into_batches_within_the_limits(
    fake: FakeOpenAI, env_key: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(batch_module, "MAX_BATCH_REQUESTS", 3)
    req, res, ids = make_requests(tmp_path, 7)
    stats = run_batch(req, res, config=config_for(fake), desc="test")
    assert stats.succeeded == 7 and fake.batches_created == 3 and fake.lines_executed == 7
    state = json.loads(state_path(req).read_text())
    assert [len(b["custom_ids"]) for b in state["batches"]] == [3, 3, 1]
    assert result_ids(res) == Counter(ids)


def test_several_batches_in_flight_at_once(
    fake: FakeOpenAI, env_key: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(batch_module, "MAX_BATCH_REQUESTS", 3)
    req, res, ids = make_requests(tmp_path, 7)
    config = config_for(fake)
    config.batches_in_flight = 2
    fake.hold()
    first = run_batch(req, res, config=config, wait=False)
    assert fake.batches_created == 2 and first.sent == 6 and first.pending == 7
    held = json.loads(state_path(req).read_text())["batches"]
    assert [len(b["custom_ids"]) for b in held] == [3, 3] and not any(b["collected"] for b in held)
    fake.release()
    done = run_batch(req, res, config=config, wait=True)
    assert done.succeeded == 7 and done.sent == 1 and done.pending == 0
    assert fake.batches_created == 3 and fake.lines_executed == 7
    assert result_ids(res) == Counter(ids)


def test_batch_completes_with_real_answers(fake: FakeOpenAI, env_key: str, tmp_path: Path) -> None:
    req, res, ids = make_requests(tmp_path, 8)
    stats = run_batch(req, res, config=config_for(fake), desc="test")
    assert (stats.total, stats.skipped, stats.succeeded, stats.failed) == (8, 0, 8, 0)
    assert stats.prompt_tokens > 0 and 0 < stats.completion_tokens <= 8 * 8
    assert result_ids(res) == Counter(ids)
    answers = [answer_text(row) for row in read_jsonl(res)]
    assert all(isinstance(a, str) and a.strip() for a in answers), answers
    assert fake.batches_created == 1 and fake.lines_executed == 8
    state = json.loads(state_path(req).read_text())
    assert state_path(req).name == "gen.requests.batch.json"
    (batch,) = state["batches"]
    assert batch["status"] == "completed" and batch["collected"] is True
    assert sorted(batch["custom_ids"]) == sorted(ids)
    assert batch["id"] in fake.batches and batch["input_file_id"] in fake.files
    assert state["permanent_failures"] == {}
    assert not errors_path(res).exists()


def test_expired_batch_resubmits_only_missing(fake: FakeOpenAI, env_key: str, tmp_path: Path) -> None:
    req, res, ids = make_requests(tmp_path, 8)
    fake.expire_after = 3
    stats = run_batch(req, res, config=config_for(fake))
    assert result_ids(res) == Counter(ids)
    assert stats.succeeded == 8 and stats.failed == 0
    assert fake.batches_created == 2
    assert fake.lines_executed == 8 and set(fake.executed_ids.values()) == {1}
    first, second = json.loads(state_path(req).read_text())["batches"]
    assert first["status"] == "expired" and first["results"] == 3 and first["not_run"] == 5
    assert len(second["custom_ids"]) == 5 and not set(second["custom_ids"]) & set(
        row["custom_id"] for row in list(read_jsonl(res))[:3]
    )
    assert second["status"] == "completed"
    assert stats.sent == 13 and stats.retries == 5


def test_rerun_after_completion_changes_nothing(fake: FakeOpenAI, env_key: str, tmp_path: Path) -> None:
    req, res, ids = make_requests(tmp_path, 6)
    run_batch(req, res, config=config_for(fake))
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    stats = run_batch(req, res, config=config_for(fake))
    assert fake.batches_created == 1 and fake.lines_executed == 6
    assert (stats.skipped, stats.succeeded, stats.sent) == (6, 0, 0)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_resume_recorded_in_flight_batch(fake: FakeOpenAI, env_key: str, tmp_path: Path) -> None:
    req, res, ids = make_requests(tmp_path, 6)
    fake.hold()
    first = run_batch(req, res, config=config_for(fake), wait=False)
    assert first.pending == 6 and first.succeeded == 0 and fake.batches_created == 1
    (batch,) = json.loads(state_path(req).read_text())["batches"]
    assert batch["status"] == "validating" and batch["collected"] is False
    # a second look while it is still held neither submits nor waits
    again = run_batch(req, res, config=config_for(fake), wait=False)
    assert again.pending == 6 and again.sent == 0 and fake.batches_created == 1
    fake.release()
    second = run_batch(req, res, config=config_for(fake), wait=True)
    assert second.succeeded == 6 and second.sent == 0 and second.pending == 0
    assert fake.batches_created == 1 and fake.lines_executed == 6
    assert result_ids(res) == Counter(ids)


def test_lost_creation_answer_does_not_create_twice(fake: FakeOpenAI, env_key: str, tmp_path: Path) -> None:
    req, res, ids = make_requests(tmp_path, 4)
    fake.lose_create_responses = 1  # the batch exists but its creation is answered with a 500
    stats = run_batch(req, res, config=config_for(fake))
    assert fake.lose_create_responses == 0
    assert stats.succeeded == 4 and stats.batches_created == 1
    assert fake.batches_created == 1 and fake.lines_executed == 4
    assert result_ids(res) == Counter(ids)


def test_permanent_error_is_reported_not_resubmitted(
    fake: FakeOpenAI, env_key: str, tmp_path: Path
) -> None:
    req, res, ids = make_requests(tmp_path, 6)
    fake.fail_ids = {"q2"}
    stats = run_batch(req, res, config=config_for(fake))
    assert (stats.succeeded, stats.failed, stats.pending) == (5, 1, 0)
    assert fake.batches_created == 1 and fake.executed_ids["q2"] == 1
    assert set(result_ids(res)) == set(ids) - {"q2"}
    (error,) = read_jsonl(errors_path(res))
    assert error["custom_id"] == "q2" and error["error"]["status_code"] == 400
    assert "q2" in json.loads(state_path(req).read_text())["permanent_failures"]

    again = run_batch(req, res, config=config_for(fake))  # a re-run does not pay for it again
    assert (again.skipped, again.failed, again.sent) == (5, 1, 0) and fake.batches_created == 1
    assert [e["custom_id"] for e in read_jsonl(errors_path(res))] == ["q2"]

    retried = run_batch(req, res, config=config_for(fake), retry_permanent=True)
    assert retried.sent == 1 and retried.failed == 1 and fake.batches_created == 2
    assert fake.executed_ids["q2"] == 2 and sum(fake.executed_ids.values()) == 7


def _assert_secret_absent(folder: Path) -> None:
    for path in folder.rglob("*"):
        if path.is_file():
            assert SECRET not in path.read_text(errors="replace"), path


def test_api_key_never_leaks_on_auth_errors(
    fake: FakeOpenAI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.delenv("SYNTRIEVER_LLM_API_KEY", raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    # the fake is hostile: its 401 echoes the credential it was sent
    probe = urllib.request.Request(
        fake.base_url + "/batches/x", headers={"Authorization": f"Bearer {SECRET}"}
    )
    with pytest.raises(urllib.error.HTTPError) as http_err:
        urllib.request.urlopen(probe, timeout=10)
    assert http_err.value.code == 401 and SECRET in http_err.value.read().decode()

    req, res, ids = make_requests(tmp_path, 4)
    config = config_for(fake)
    # 1. refused upload: nothing submitted
    with pytest.raises(BatchRunError) as refused:
        run_batch(req, res, config=config)
    assert "AuthenticationError" in str(refused.value)
    assert fake.batches_created == 0 and fake.unauthorized >= 2
    errors = list(read_jsonl(errors_path(res)))
    assert [e["custom_id"] for e in errors] == ids and "***" in errors[0]["error"]["message"]

    # 2. a batch recorded with the right key, then polled with a refused key
    fake.api_key = SECRET
    fake.hold()
    run_batch(req, res, config=config, wait=False)
    fake.api_key = KEY
    with pytest.raises(BatchRunError) as refused_poll:
        run_batch(req, res, config=config)
    assert fake.batches_created == 1

    for exc in (refused.value, refused_poll.value):
        assert SECRET not in str(exc) and SECRET not in repr(exc.stats)
        assert SECRET not in "".join(traceback.format_exception(exc))
    assert {"openai._base_client", "syntriever.llm.batch"} <= {r.name for r in caplog.records}
    assert SECRET not in caplog.text
    for record in caplog.records:
        assert SECRET not in record.getMessage()
    assert state_path(req).exists()
    _assert_secret_absent(tmp_path)

    # 3. the right key again: the recorded batch is collected, not paid twice
    fake.api_key = SECRET
    fake.release()
    stats = run_batch(req, res, config=config)
    assert stats.succeeded == 4 and fake.batches_created == 1
    assert SECRET not in caplog.text
    _assert_secret_absent(tmp_path)


def test_api_key_absent_from_files_of_a_good_run(
    fake: FakeOpenAI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.delenv("SYNTRIEVER_LLM_API_KEY", raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    fake.api_key = SECRET
    req, res, ids = make_requests(tmp_path, 4)
    stats = run_batch(req, res, config=config_for(fake))
    assert stats.succeeded == 4 and fake.unauthorized == 0
    assert {p.name for p in tmp_path.iterdir()} == {req.name, res.name, state_path(req).name}
    _assert_secret_absent(tmp_path)
    assert SECRET not in caplog.text
