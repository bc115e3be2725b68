"""The ``online`` runner: concurrent chat completions against any OpenAI-compatible server.

Requests are sent in file order by a fixed number of workers (so consecutive prompts that share a
prefix reach the server close together and hit its prompt cache). Transient failures (429, 5xx,
timeouts, dropped connections) are retried with exponential backoff and jitter; each success is
appended (fsync'd) to the result file as it arrives; ``custom_id``s that already have a result are
skipped, so an interrupted run resumes without sending anything twice.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import openai
from tqdm.auto import tqdm

from syntriever.jsonl import JsonlAppender, write_jsonl
from syntriever.llm.config import CONCURRENCY
from syntriever.llm.requests import load_requests, load_results, result_line, usage
from syntriever.llm.secrets import redact

logger = logging.getLogger(__name__)

RETRYABLE = (openai.APIConnectionError, openai.APITimeoutError, openai.RateLimitError)


@dataclass
class RunStats:
    """What one runner call did."""

    total: int = 0
    skipped: int = 0
    sent: int = 0
    succeeded: int = 0
    failed: int = 0
    retries: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    errors: list[dict[str, Any]] = field(default_factory=list)

    @property
    def requests_per_s(self) -> float:
        return self.succeeded / self.seconds if self.seconds else 0.0

    @property
    def tokens_per_s(self) -> float:
        return self.completion_tokens / self.seconds if self.seconds else 0.0

    def summary(self) -> str:
        return (
            f"{self.succeeded}/{self.total - self.skipped} requests ok ({self.skipped} already done, "
            f"{self.failed} failed, {self.retries} retries) in {self.seconds:.1f} s: "
            f"{self.requests_per_s:.2f} req/s, {self.tokens_per_s:.1f} generated tok/s, "
            f"{self.prompt_tokens} prompt + {self.completion_tokens} completion tokens"
        )


def errors_path(results_path: Path) -> Path:
    """Where failed requests of the last run are listed (next to the results)."""
    return results_path.with_name(results_path.name.replace(".jsonl", "") + ".errors.jsonl")


def _retryable(err: Exception) -> bool:
    if isinstance(err, RETRYABLE):
        return True
    return isinstance(err, openai.APIStatusError) and (err.status_code >= 500 or err.status_code == 429)


async def _send(
    client: openai.AsyncOpenAI,
    request: dict[str, Any],
    model: str | None,
    max_retries: int,
    stats: RunStats,
) -> dict[str, Any]:
    body = dict(request["body"])
    if model:
        body["model"] = model
    for attempt in range(max_retries + 1):
        try:
            response = await client.chat.completions.create(**body)
            return response.model_dump(mode="json", exclude_unset=True)
        except Exception as err:
            if not _retryable(err) or attempt == max_retries:
                raise
            stats.retries += 1
            delay = min(30.0, 0.5 * 2**attempt) * (0.5 + random.random())
            logger.debug("retrying %s in %.1f s: %s", request["custom_id"], delay, redact(str(err)))
            await asyncio.sleep(delay)
    raise AssertionError("unreachable")


async def _run(
    pending: list[dict[str, Any]],
    results_path: Path,
    client: openai.AsyncOpenAI,
    model: str | None,
    concurrency: int,
    max_retries: int,
    stats: RunStats,
    desc: str,
) -> None:
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    for request in pending:
        queue.put_nowait(request)
    start = time.monotonic()
    bar = tqdm(total=len(pending), desc=desc, unit="req", dynamic_ncols=True)
    with JsonlAppender(results_path) as out:

        async def worker() -> None:
            while True:
                try:
                    request = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                cid = request["custom_id"]
                stats.sent += 1
                try:
                    body = await _send(client, request, model, max_retries, stats)
                except Exception as err:
                    stats.failed += 1
                    message = redact(f"{type(err).__name__} from {client.base_url}: {err}")
                    stats.errors.append({"custom_id": cid, "error": {"message": message}})
                    logger.warning("request %s failed: %s", cid, message)
                else:
                    out.append(result_line(cid, body, body.get("id", "")))
                    stats.succeeded += 1
                    p_tok, c_tok = usage({"response": {"body": body}})
                    stats.prompt_tokens += p_tok
                    stats.completion_tokens += c_tok
                bar.update(1)
                elapsed = max(time.monotonic() - start, 1e-9)
                bar.set_postfix(
                    req_s=f"{stats.succeeded / elapsed:.2f}",
                    tok_s=f"{stats.completion_tokens / elapsed:.1f}",
                    failed=stats.failed,
                    refresh=False,
                )

        await asyncio.gather(*(worker() for _ in range(max(1, concurrency))))
    bar.close()


def run_online(
    requests_path: str | Path,
    results_path: str | Path,
    *,
    base_url: str | None,
    api_key: str | None,
    model: str | None = None,
    concurrency: int = CONCURRENCY,
    max_retries: int = 6,
    timeout: float = 600.0,
    desc: str = "LLM",
    pending: list[dict[str, Any]] | None = None,
    total: int | None = None,
) -> RunStats:
    """Run every request of ``requests_path`` that has no result yet in ``results_path``.

    ``model`` overrides the request bodies' model name (a local server ignores it anyway).
    Requests that still fail after the retries are listed in ``<results>.errors.jsonl`` and are
    sent again by the next run. A caller that already compared the two files passes the
    unanswered requests as ``pending`` and the file's request count as ``total``.
    """
    requests_path, results_path = Path(requests_path), Path(results_path)
    if pending is None:
        requests = load_requests(requests_path)
        done = load_results(results_path)
        pending = [r for r in requests if r["custom_id"] not in done]
        total = len(requests)
    total = len(pending) if total is None else total
    stats = RunStats(total=total, skipped=total - len(pending))
    if pending:
        logger.info(
            "%s: %d requests, %d already answered, sending %d",
            requests_path.name, total, stats.skipped, len(pending),
        )
        client = openai.AsyncOpenAI(
            base_url=base_url, api_key=api_key or "no-key", max_retries=0, timeout=timeout
        )
        start = time.monotonic()

        async def main() -> None:
            async with client:
                await _run(pending, results_path, client, model, concurrency, max_retries, stats, desc)

        try:
            asyncio.run(main())
        finally:
            stats.seconds = time.monotonic() - start
    err_file = errors_path(results_path)
    if stats.errors:
        write_jsonl(err_file, stats.errors)
    elif err_file.exists():
        err_file.unlink()
    logger.info("%s", stats.summary())
    return stats
