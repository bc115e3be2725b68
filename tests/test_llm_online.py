"""The online and local runners against the real embedded llama.cpp server (no mocks)."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from syntriever.jsonl import DataError, read_jsonl, write_jsonl
from syntriever.llm.config import LLMConfig
from syntriever.llm.local import LocalServer, free_port
from syntriever.llm.online import errors_path, run_online
from syntriever.llm.requests import answer_text, chat_request, load_requests, top_logprobs
from syntriever.llm.runner import run_requests
from tests.fake_openai import FakeOpenAI

pytestmark = pytest.mark.llm
ROOT = Path(__file__).resolve().parents[1]
WORDS = ["sun", "river", "cat", "tree", "moon", "bread", "snow", "music", "iron", "salt", "wind", "rain"]


def make_requests(path: Path, n: int, max_tokens: int = 6, **kwargs: object) -> list[str]:
    rows = [
        chat_request(f"r{i}", [{"role": "user", "content": f"Say one word about {WORDS[i % len(WORDS)]}."}],
                     model="local", temperature=0.0, max_tokens=max_tokens, **kwargs)
        for i in range(n)
    ]
    write_jsonl(path, rows)
    return [r["custom_id"] for r in rows]


def result_ids(path: Path) -> list[str]:
    return [r["custom_id"] for r in read_jsonl(path)]


@pytest.fixture(scope="module")
def server(llama_server_bin: Path) -> Iterator[LocalServer]:
    with LocalServer(model="qwen0.5b", parallel=4) as running:
        yield running


def test_local_backend_runs_a_request_file(tmp_path: Path, llama_server_bin: Path) -> None:
    ids = make_requests(tmp_path / "req.jsonl", 24, logprobs=True, top_logprobs=5)
    config = LLMConfig(backend="local", model="qwen0.5b", concurrency=4)
    stats = run_requests(config, tmp_path / "req.jsonl", tmp_path / "res.jsonl")
    assert stats is not None and stats.succeeded == 24 and stats.failed == 0
    assert sorted(result_ids(tmp_path / "res.jsonl")) == sorted(ids)
    results = list(read_jsonl(tmp_path / "res.jsonl"))
    assert all(answer_text(r).strip() for r in results)
    assert all(top_logprobs(r, 0) for r in results)  # log-probabilities come back
    assert stats.completion_tokens > 0 and stats.prompt_tokens > 0
    # a second run sends nothing
    again = run_requests(config, tmp_path / "req.jsonl", tmp_path / "res.jsonl")
    assert again is not None and again.skipped == 24 and again.sent == 0


def test_killed_run_resumes_with_one_result_per_request(tmp_path: Path, server: LocalServer) -> None:
    req, res = tmp_path / "req.jsonl", tmp_path / "res.jsonl"
    ids = make_requests(req, 16, max_tokens=24)
    script = (
        "import sys; from syntriever.llm.online import run_online; "
        f"run_online({str(req)!r}, {str(res)!r}, base_url={server.base_url!r}, api_key=None, concurrency=2)"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if res.exists() and len(res.read_text().splitlines()) >= 3:
            break
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = len(set(result_ids(res)))
    assert 3 <= done_before < 16, "the run should have been killed midway"
    with open(res, "a") as fh:
        fh.write('{"id": "torn", "custom_id": "r')  # a write cut short by the kill
    stats = run_online(req, res, base_url=server.base_url, api_key=None, concurrency=2)
    assert stats.skipped == done_before and stats.sent == 16 - done_before
    final = result_ids(res)
    assert Counter(final) == Counter(ids), "exactly one result per request"


def test_server_killed_and_restarted_under_the_runner(tmp_path: Path, llama_server_bin: Path) -> None:
    req, res = tmp_path / "req.jsonl", tmp_path / "res.jsonl"
    ids = make_requests(req, 12, max_tokens=16)
    port = free_port()
    first = LocalServer(model="qwen0.5b", parallel=2, port=port).start()
    outcome: dict[str, object] = {}

    def run() -> None:
        outcome["stats"] = run_online(req, res, base_url=first.base_url, api_key=None,
                                      concurrency=2, max_retries=8)

    worker = threading.Thread(target=run)
    worker.start()
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not (res.exists() and res.read_text().count("\n") >= 2):
            time.sleep(0.1)
        assert first.process is not None
        first.process.kill()  # the server dies mid-run
        first.process.wait()
        time.sleep(1.0)
        second = LocalServer(model="qwen0.5b", parallel=2, port=port).start()
        try:
            worker.join(timeout=600)
        finally:
            second.stop()
    finally:
        first.stop()
    stats = outcome["stats"]
    assert stats.retries >= 1 and stats.failed == 0  # type: ignore[attr-defined]
    assert Counter(result_ids(res)) == Counter(ids)


def test_errors_are_retried_then_reported(tmp_path: Path, server: LocalServer) -> None:
    req, res = tmp_path / "req.jsonl", tmp_path / "res.jsonl"
    ids = make_requests(req, 4)
    with FakeOpenAI(server.base_url, api_key="sk-right-key-000000") as fake:
        fake.chat_failures = [429, 500, 503]
        stats = run_online(req, res, base_url=fake.base_url, api_key="sk-right-key-000000",
                           concurrency=1, max_retries=4)
        assert stats.retries == 3 and stats.failed == 0
        assert Counter(result_ids(res)) == Counter(ids)
        # a request that keeps failing is listed in the errors file, not written as a result
        make_requests(req, 5)
        fake.chat_failures = [500] * 3
        stats = run_online(req, res, base_url=fake.base_url, api_key="sk-right-key-000000",
                           concurrency=1, max_retries=2)
        assert stats.failed == 1 and stats.succeeded == 0
        assert [e["custom_id"] for e in read_jsonl(errors_path(res))] == ["r4"]
        stats = run_online(req, res, base_url=fake.base_url, api_key="sk-right-key-000000", concurrency=1)
        assert stats.succeeded == 1 and not errors_path(res).exists()


def test_api_key_never_leaks_from_the_online_runner(
    tmp_path: Path, server: LocalServer, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "sk-test-SECRET-0123456789abcdef"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    req, res = tmp_path / "req.jsonl", tmp_path / "res.jsonl"
    make_requests(req, 2)
    caplog.set_level(logging.DEBUG)
    with FakeOpenAI(server.base_url, api_key="sk-other-key-111111") as fake:  # 401 echoes our key
        config = LLMConfig(backend="online", model="gpt-4o", base_url=fake.base_url, max_retries=1)
        stats = run_requests(config, req, res)
    assert stats is not None and stats.failed == 2
    written = "".join(p.read_text() for p in tmp_path.iterdir() if p.is_file())
    assert "401" in written or "Authentication" in written or "Unauthorized" in written
    for text in (written, caplog.text, json.dumps(stats.errors)):
        assert secret not in text


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"custom_id": "a", "method": "POST", "url": "/v1/chat/completions", "body": '
         '{"messages": [{"role": "user", "content": "x"}]}}\n{"custom_id": "a", "method": "POST", '
         '"url": "/v1/chat/completions", "body": {"messages": [{"role": "user", "content": "y"}]}}\n',
         r"req\.jsonl:2: duplicate custom_id 'a' \(first on line 1\)"),
        ('{"custom_id": "a", "method": "GET", "url": "/v1/chat/completions", "body": {}}\n',
         r"req\.jsonl:1: 'method' must be 'POST'"),
        ('{"custom_id": "a", "method": "POST", "url": "/v1/embeddings", "body": {}}\n',
         r"req\.jsonl:1: 'url' must be"),
        ('{"custom_id": "a", "method": "POST", "url": "/v1/chat/completions", "body": {"messages": []}}\n',
         r"req\.jsonl:1: 'body.messages' must be a non-empty list"),
        ('{"method": "POST"}\n', r"req\.jsonl:1: 'custom_id' must be a non-empty string"),
        ('{"custom_id": "a",\n', r"req\.jsonl:1: malformed JSON"),
        ("\n", r"req\.jsonl: no requests"),
    ],
)
def test_bad_request_files_are_refused(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "req.jsonl"
    path.write_text(content)
    with pytest.raises(DataError, match=message):
        load_requests(path)


def test_local_server_stops_with_its_owner(tmp_path: Path, llama_server_bin: Path) -> None:
    # on an error inside the block
    with pytest.raises(RuntimeError, match="boom"), LocalServer(model="qwen0.5b", parallel=1) as srv:
        proc = srv.process
        raise RuntimeError("boom")
    assert proc is not None and proc.poll() is not None
    # on Ctrl-C (SIGINT) of the owning process, and on SIGKILL of it
    for sig in (signal.SIGINT, signal.SIGKILL):
        script = (  # Ctrl-C handling as in a terminal, even when this test runs as a background job
            "import signal, sys, time; from syntriever.llm.local import LocalServer\n"
            "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
            "with LocalServer(model='qwen0.5b', parallel=1) as s:\n"
            "    print(s.process.pid, flush=True); time.sleep(600)\n"
        )
        owner = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE,
                                 stderr=subprocess.DEVNULL, text=True)
        assert owner.stdout is not None
        server_pid = int(owner.stdout.readline())
        owner.send_signal(sig)
        owner.wait(timeout=60)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and _alive(server_pid):
            time.sleep(0.2)
        assert not _alive(server_pid), f"llama-server outlived its owner after {sig.name}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"
