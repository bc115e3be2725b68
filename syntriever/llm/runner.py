"""Running LLM requests with the configured backend: one request file (:func:`run_requests`) or
one LLM step of a stage (:func:`execute_requests`: write, run, resume, check complete)."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from syntriever.errors import UserError
from syntriever.jsonl import read_json, write_jsonl
from syntriever.llm.batch import run_batch
from syntriever.llm.config import LLMConfig
from syntriever.llm.local import LocalServer
from syntriever.llm.online import RunStats, errors_path, run_online
from syntriever.llm.requests import load_requests, load_results, usage
from syntriever.llm.secrets import api_key

logger = logging.getLogger(__name__)


def run_requests(
    config: LLMConfig,
    requests_path: Path,
    results_path: Path,
    *,
    desc: str = "LLM",
    requests: list[dict[str, Any]] | None = None,
    done: set[str] | None = None,
) -> RunStats | None:
    """Run a request file with the configured backend; return stats (None for a dry run).

    ``requests`` are the file's requests and ``done`` the ids already in ``results_path`` when
    the caller holds them (each file is then read once)."""
    if requests is None:
        requests = load_requests(requests_path)
    if done is None:
        done = set(load_results(results_path))
    pending = [r for r in requests if r["custom_id"] not in done]
    est = config.estimate(pending)
    logger.info("%s: %d of %d requests to run; estimate: %s", desc, len(pending), len(requests),
                est.summary())
    if config.dry_run:
        return None
    if not pending:
        return RunStats(total=len(requests), skipped=len(requests))
    if config.backend == "batch":
        return run_batch(requests_path, results_path, config=config, desc=desc,
                         requests=requests, done=set(done))
    online = dict(concurrency=config.concurrency, max_retries=config.max_retries, desc=desc,
                  pending=pending, total=len(requests))
    if config.is_local:
        with LocalServer(model=config.model, parallel=config.concurrency, threads=config.threads) as server:
            return run_online(requests_path, results_path, base_url=server.base_url, api_key=None, **online)
    return run_online(requests_path, results_path, base_url=config.base_url, api_key=api_key(),
                      model=config.model, **online)


@dataclass
class Sent:
    """What an LLM step sent in this run: results already on disk (resumed, or seeded from
    committed answers) are not counted, so a rebuild from committed results sends nothing."""

    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def __add__(self, other: Sent) -> Sent:
        return Sent(self.requests + other.requests, self.prompt_tokens + other.prompt_tokens,
                    self.completion_tokens + other.completion_tokens)


def execute_requests(
    config: LLMConfig, folder: Path, name: str, requests: list[dict[str, Any]], *, desc: str
) -> tuple[dict[str, dict[str, Any]] | None, Sent]:
    """One LLM step: write ``<folder>/<name>.requests.jsonl``, run it (resuming from
    ``<name>.results.jsonl``); return the results by ``custom_id`` (None for a dry run) and what
    this run sent."""
    requests_path, results_path = folder / f"{name}.requests.jsonl", folder / f"{name}.results.jsonl"
    if not requests:
        logger.warning("%s: no requests to send", desc)
        return {}, Sent()
    write_jsonl(requests_path, requests)
    before = set(load_results(results_path)) if results_path.is_file() else set()
    if run_requests(config, requests_path, results_path, desc=desc, requests=requests, done=before) is None:
        return None, Sent()
    results = load_results(results_path)
    new = [usage(results[r["custom_id"]]) for r in requests
           if r["custom_id"] in results and r["custom_id"] not in before]
    sent = Sent(len(new), sum(u[0] for u in new), sum(u[1] for u in new))
    missing = sum(r["custom_id"] not in results for r in requests)
    if missing:
        raise IncompleteRun(
            f"{desc}: {missing} of {len(requests)} requests have no result yet (failures are listed "
            f"in {errors_path(results_path)}); run the same command again to resume"
        )
    return results, sent


class IncompleteRun(UserError, RuntimeError):
    """Some requests of an LLM step still have no result; nothing downstream is written."""


def check_same_setup(summaries: Iterable[Path], settings: Mapping[str, Any], keys: Iterable[str]) -> None:
    """Refuse (:class:`UserError`) a run whose ``settings`` differ in one of ``keys`` (those that
    change the answers) from the ``settings`` recorded in a summary of the same run folder: the
    folder's answers are reused by request id, so they would be mixed with answers to other prompts
    or caps, and the run's complete output replaced."""
    for summary in summaries:
        fix = f"restore it with `git checkout {summary}`, or move the folder away to start anew"
        record = read_json(summary, fix)
        before = record.get("settings") or {}
        changed = sorted(k for k in keys if k in before and before[k] != settings[k])
        if changed:
            differ = ", ".join(f"{k} {before[k]!r} there, {settings[k]!r} now" for k in changed)
            again = (record.get("commands") or ["its command (the same --llm-backend and caps)"])[-1]
            raise UserError(f"{summary}: this run folder was made with other settings ({differ}); run with "
                            f"those, as `{again}`, or move the folder away")
