"""The OpenAI Batch API calls of the ``batch`` runner: upload, create (never twice), retrieve,
download, each retried on transient errors; nothing here keeps run state."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

import openai

from syntriever.llm.config import LLMConfig
from syntriever.llm.online import RunStats
from syntriever.llm.requests import CHAT_URL
from syntriever.llm.secrets import api_key, redact

logger = logging.getLogger(__name__)

TRANSIENT_ERRORS = (
    openai.APIConnectionError,  # includes APITimeoutError
    openai.RateLimitError,
    openai.InternalServerError,
)


class BatchRunError(RuntimeError):
    """The batch run stopped before every request had a result; ``stats`` says what it did."""

    def __init__(self, message: str, stats: RunStats) -> None:
        super().__init__(message)
        self.stats = stats


def request_counts(batch: Any) -> dict[str, int]:
    """A batch's ``request_counts`` as a plain dict (zeros when the API gave none)."""
    counts = getattr(batch, "request_counts", None)
    if counts is None:
        return {"total": 0, "completed": 0, "failed": 0}
    return {"total": counts.total, "completed": counts.completed, "failed": counts.failed}


def batch_errors(batch: Any) -> list[str]:
    """A batch's own errors (not its requests'), redacted and shortened."""
    errors = getattr(batch, "errors", None)
    data = getattr(errors, "data", None) or []
    return [redact(f"{e.code or 'error'}: {e.message or ''}")[:500] for e in data]


def _parse_lines(text: str, where: str) -> list[dict[str, Any]]:
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            logger.warning("%s:%d: skipping a malformed line", where, number)
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


class BatchApi:
    """The API client of one run; the key is read from the environment on first use."""

    def __init__(self, config: LLMConfig, desc: str, client: openai.OpenAI | None, stats: RunStats) -> None:
        self.config, self.desc, self._client, self._stats = config, desc, client, stats

    @property
    def client(self) -> openai.OpenAI:
        if self._client is None:
            key = api_key()
            if not key:
                raise BatchRunError("the batch backend needs OPENAI_API_KEY in the environment", self._stats)
            self._client = openai.OpenAI(base_url=self.config.base_url, api_key=key)
        return self._client

    def _backoff(self, attempt: int) -> float:
        return min(60.0, max(self.config.poll_interval, 1.0) * 2**attempt)

    def call(self, what: str, fn: Callable[[], Any]) -> Any:
        """Call the API; transient errors are retried up to ``config.max_retries`` times."""
        for attempt in range(self.config.max_retries + 1):
            try:
                return fn()
            except TRANSIENT_ERRORS as err:
                if attempt == self.config.max_retries:
                    raise
                delay = self._backoff(attempt)
                logger.warning("%s: %s failed (%s); retrying in %.0f s", self.desc, what,
                               redact(f"{type(err).__name__}: {err}"), delay)
                time.sleep(delay)
        raise AssertionError("unreachable")

    def upload(self, name: str, payload: bytes) -> Any:
        """Upload a request file for the Batch API."""
        return self.call("upload", lambda: self.client.files.create(
            file=(name, payload, "application/jsonl"), purpose="batch"
        ))

    def create(self, input_file_id: str, metadata: dict[str, str]) -> Any:
        """Create the batch of an uploaded file, without ever creating two.

        The API takes no idempotency key, so a lost answer (timeout, 5xx) is ambiguous: the batch
        may exist. Before trying again, look for a batch made from the same input file.
        """
        once = self.client.with_options(max_retries=0)
        for attempt in range(self.config.max_retries + 1):
            try:
                return once.batches.create(
                    input_file_id=input_file_id, endpoint=CHAT_URL, completion_window="24h",
                    metadata=metadata,
                )
            except TRANSIENT_ERRORS as err:
                logger.warning("%s: batch creation failed (%s); checking whether it exists", self.desc,
                               redact(f"{type(err).__name__}: {err}"))
                time.sleep(self._backoff(attempt))
                recent = self.call("batch listing", lambda: self.client.batches.list(limit=100))
                found = next((b for b in recent.data if b.input_file_id == input_file_id), None)
                if found is not None:
                    logger.info("%s: batch %s was created after all", self.desc, found.id)
                    return found
                if attempt == self.config.max_retries:
                    raise
        raise AssertionError("unreachable")

    def retrieve(self, batch_id: str) -> Any:
        return self.call("status poll", lambda: self.client.batches.retrieve(batch_id))

    def download(self, file_id: str) -> list[dict[str, Any]]:
        """The JSON lines of an output or error file (malformed lines skipped with a warning)."""
        content = self.call(f"download of {file_id}", lambda: self.client.files.content(file_id))
        return _parse_lines(content.text, file_id)
