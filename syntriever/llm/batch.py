"""The ``batch`` runner: the OpenAI Batch API (upload, create, poll, download), resumable.

Every batch submitted is recorded in a state file next to the request file
(``<requests stem>.batch.json``) as soon as it exists, so a re-run polls the recorded batch instead
of paying for the same requests twice. When a batch ends (completed, expired, failed or
cancelled) its output and error files are downloaded, successful lines are appended to the result
file, and requests still without a result are sent again in a new batch, at most ``max_rounds``
rounds in a row without progress. Large runs are split into batches within the API limits, with
up to ``config.batches_in_flight`` of them submitted at once. Requests answered with a permanent
client error (a 4xx other than 408/429) are not resubmitted: they are counted as failed and
listed in the errors file.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import openai

from syntriever.jsonl import DataError, JsonlAppender, write_json, write_jsonl
from syntriever.llm.config import LLMConfig
from syntriever.llm.online import RunStats, errors_path
from syntriever.llm.requests import CHAT_URL, is_success, load_requests, load_results, usage
from syntriever.llm.secrets import api_key, redact

logger = logging.getLogger(__name__)

STATE_VERSION = 1
TERMINAL = frozenset({"completed", "expired", "failed", "cancelled"})
TRANSIENT_STATUS = frozenset({408, 429})
NOT_RUN_CODES = frozenset({"batch_expired", "batch_cancelled"})
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


@dataclass
class BatchStats(RunStats):
    """:class:`RunStats` plus what is still in flight (``pending``) and the batches created."""

    pending: int = 0
    batches_created: int = 0


MAX_BATCH_REQUESTS = 50_000
MAX_BATCH_BYTES = 190 * 1024 * 1024


def state_path(requests_path: str | Path) -> Path:
    """The state file of a request file: ``<requests stem>.batch.json`` in the same folder."""
    path = Path(requests_path)
    stem = path.name.removesuffix(".gz").removesuffix(".jsonl")
    return path.with_name(f"{stem}.batch.json")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _load_state(path: Path, requests_path: Path) -> dict[str, Any]:
    if not path.exists():
        return {
            "version": STATE_VERSION,
            "requests_file": requests_path.name,
            "endpoint": CHAT_URL,
            "batches": [],
            "permanent_failures": {},
        }
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: malformed batch state ({err.msg}); it records paid batches, fix it "
                        "by hand rather than deleting it") from None
    if not isinstance(state, dict) or not isinstance(state.get("batches"), list):
        raise DataError(f"{path}: not a batch state file (no 'batches' list)")
    state.setdefault("permanent_failures", {})
    return state


def _counts(batch: Any) -> dict[str, int]:
    counts = getattr(batch, "request_counts", None)
    if counts is None:
        return {"total": 0, "completed": 0, "failed": 0}
    return {"total": counts.total, "completed": counts.completed, "failed": counts.failed}


def _batch_errors(batch: Any) -> list[str]:
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


def _failure(row: dict[str, Any]) -> tuple[int | None, str]:
    """(HTTP status or None, message) of a non-successful output/error line."""
    response = row.get("response") or {}
    status = response.get("status_code")
    error = row.get("error") or {}
    message = error.get("message") or error.get("code") or ""
    body = response.get("body")
    if not message and isinstance(body, dict):
        inner = body.get("error")
        message = inner.get("message", "") if isinstance(inner, dict) else json.dumps(body)[:300]
    if not message and status is not None:
        message = f"HTTP {status}"
    return (status if isinstance(status, int) else None), redact(str(message))[:500]


def _is_permanent(status: int | None) -> bool:
    return status is not None and 400 <= status < 500 and status not in TRANSIENT_STATUS


class _Run:
    """One call of :func:`run_batch`: the state, the results so far and the API client."""

    def __init__(
        self,
        requests_path: Path,
        results_path: Path,
        config: LLMConfig,
        desc: str,
        client: openai.OpenAI | None,
        retry_permanent: bool,
        requests: list[dict[str, Any]] | None = None,
        done: set[str] | None = None,
    ) -> None:
        self.requests_path, self.results_path = requests_path, results_path
        self.config, self.desc = config, desc
        self._client = client
        if requests is None:
            requests = load_requests(requests_path)
        self.requests = {r["custom_id"]: r for r in requests}
        if done is None:
            done = set(load_results(results_path))
        self.done = done & self.requests.keys()
        self.state_file = state_path(requests_path)
        self.state = _load_state(self.state_file, requests_path)
        if retry_permanent and self.state["permanent_failures"]:
            logger.info("%s: sending %d requests with permanent errors again", desc,
                        len(self.state["permanent_failures"]))
            self.state["permanent_failures"] = {}
        self.permanent: dict[str, dict[str, Any]] = self.state["permanent_failures"]
        self.stats = BatchStats(total=len(self.requests), skipped=len(self.done))
        self.no_progress = 0

    # -- helpers ---------------------------------------------------------------------------------

    @property
    def client(self) -> openai.OpenAI:
        if self._client is None:
            key = api_key()
            if not key:
                raise BatchRunError("the batch backend needs OPENAI_API_KEY in the environment", self.stats)
            self._client = openai.OpenAI(base_url=self.config.base_url, api_key=key)
        return self._client

    def save(self) -> None:
        write_json(self.state_file, self.state)

    def missing(self) -> list[str]:
        """Requests with neither a result nor a permanent error, in file order."""
        return [cid for cid in self.requests if cid not in self.done and cid not in self.permanent]

    def in_flight(self) -> list[dict[str, Any]]:
        """Submitted batches whose results are not collected yet."""
        return [b for b in self.state["batches"] if not b.get("collected")]

    def active(self) -> dict[str, Any] | None:
        return next(iter(self.in_flight()), None)

    def unsubmitted(self) -> list[str]:
        """:meth:`missing` requests that no batch in flight holds."""
        held = {cid for b in self.in_flight() for cid in b["custom_ids"]}
        return [cid for cid in self.missing() if cid not in held]

    def _call(self, what: str, fn: Callable[[], Any]) -> Any:
        """Call the API; transient errors are retried up to ``config.max_retries`` times."""
        for attempt in range(self.config.max_retries + 1):
            try:
                return fn()
            except TRANSIENT_ERRORS as err:
                if attempt == self.config.max_retries:
                    raise
                delay = min(60.0, max(self.config.poll_interval, 1.0) * 2**attempt)
                logger.warning("%s: %s failed (%s); retrying in %.0f s", self.desc, what,
                               redact(f"{type(err).__name__}: {err}"), delay)
                time.sleep(delay)
        raise AssertionError("unreachable")

    # -- submitting ------------------------------------------------------------------------------

    def submit(self, custom_ids: list[str]) -> dict[str, Any]:
        """Upload the requests ``custom_ids`` as a new input file and create a batch for them."""
        number = len(self.state["batches"]) + 1
        stem = self.state_file.name.removesuffix(".batch.json")
        payload = "".join(
            json.dumps(self.requests[cid], ensure_ascii=False) + "\n" for cid in custom_ids
        ).encode("utf-8")
        upload = self._call("upload", lambda: self.client.files.create(
            file=(f"{stem}.part{number}.jsonl", payload, "application/jsonl"), purpose="batch"
        ))
        batch = self._create(upload.id, {"requests_file": self.requests_path.name[:500], "part": str(number)})
        record = {
            "id": batch.id,
            "input_file_id": upload.id,
            "custom_ids": custom_ids,
            "status": batch.status,
            "created_at": batch.created_at,
            "submitted_at": _now(),
            "request_counts": _counts(batch),
            "output_file_id": None,
            "error_file_id": None,
            "collected": False,
            "collected_at": None,
        }
        self.state["batches"].append(record)
        self.save()  # before anything else can fail: this batch is being paid for
        earlier = {cid for b in self.state["batches"][:-1] for cid in b["custom_ids"]}
        self.stats.sent += len(custom_ids)
        self.stats.retries += sum(cid in earlier for cid in custom_ids)
        self.stats.batches_created += 1
        logger.info("%s: submitted batch %s with %d requests (input file %s, %d bytes)", self.desc,
                    batch.id, len(custom_ids), upload.id, len(payload))
        return record

    def _create(self, input_file_id: str, metadata: dict[str, str]) -> Any:
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
                time.sleep(min(60.0, max(self.config.poll_interval, 1.0) * 2**attempt))
                recent = self._call("batch listing", lambda: self.client.batches.list(limit=100))
                found = next((b for b in recent.data if b.input_file_id == input_file_id), None)
                if found is not None:
                    logger.info("%s: batch %s was created after all", self.desc, found.id)
                    return found
                if attempt == self.config.max_retries:
                    raise
        raise AssertionError("unreachable")

    # -- polling and collecting ------------------------------------------------------------------

    def poll(self, record: dict[str, Any]) -> Any:
        """Retrieve a batch once, log one status line and record its status."""
        batch = self._call("status poll", lambda: self.client.batches.retrieve(record["id"]))
        counts = _counts(batch)
        elapsed = max(0.0, time.time() - (batch.created_at or time.time()))
        logger.info("%s: batch %s %s: %d/%d completed, %d failed, %.0f s elapsed", self.desc,
                    batch.id, batch.status, counts["completed"], counts["total"], counts["failed"],
                    elapsed)
        if batch.status != record["status"] or counts != record.get("request_counts"):
            record["status"], record["request_counts"] = batch.status, counts
            self.save()
        return batch

    def _download(self, file_id: str) -> list[dict[str, Any]]:
        content = self._call(f"download of {file_id}", lambda: self.client.files.content(file_id))
        return _parse_lines(content.text, file_id)

    def collect(self, record: dict[str, Any], batch: Any) -> None:
        """Append a finished batch's successes to the results; classify what failed."""
        rows = []
        if batch.output_file_id:
            rows += self._download(batch.output_file_id)
        if batch.error_file_id:
            rows += self._download(batch.error_file_id)
        wanted = set(record["custom_ids"])
        seen: set[str] = set()
        new_ok = new_permanent = transient = expired = already = 0
        with JsonlAppender(self.results_path) as out:
            for row in rows:
                cid = row.get("custom_id")
                if cid not in self.requests:
                    logger.warning("%s: batch %s answered an unknown custom_id %r; ignored", self.desc,
                                   batch.id, cid)
                    continue
                seen.add(cid)
                if is_success(row):
                    if cid in self.done:
                        already += 1
                        continue
                    out.append(row)
                    self.done.add(cid)
                    self.permanent.pop(cid, None)
                    self.stats.succeeded += 1
                    prompt, completion = usage(row)
                    self.stats.prompt_tokens += prompt
                    self.stats.completion_tokens += completion
                    new_ok += 1
                    continue
                if cid in self.done:
                    continue
                if (row.get("error") or {}).get("code") in NOT_RUN_CODES:
                    expired += 1
                    continue
                status, message = _failure(row)
                if _is_permanent(status):
                    if cid not in self.permanent:
                        new_permanent += 1
                    self.permanent[cid] = {"status_code": status, "message": message, "batch_id": batch.id}
                else:
                    transient += 1
        not_run = expired + len(wanted - seen - self.done)
        record.update(
            status=batch.status,
            request_counts=_counts(batch),
            output_file_id=batch.output_file_id,
            error_file_id=batch.error_file_id,
            collected=True,
            collected_at=_now(),
            results=new_ok,
            permanent_failures=sum(1 for cid in wanted if cid in self.permanent),
            transient_failures=transient,
            not_run=not_run,
        )
        errors = _batch_errors(batch)
        if errors:
            record["errors"] = errors
        self.save()
        clean = batch.status == "completed" and not (new_permanent or transient or not_run)
        log = logger.info if clean else logger.warning
        log("%s: batch %s %s: %d new results, %d failed permanently, %d failed transiently, "
            "%d not run (expired/cancelled)%s%s", self.desc, batch.id, batch.status, new_ok, new_permanent,
            transient, not_run, f", {already} already present" if already else "",
            f"; errors: {'; '.join(errors)}" if errors else "")
        self.no_progress = 0 if new_ok or new_permanent else self.no_progress + 1

    # -- the loop --------------------------------------------------------------------------------

    def run(self, wait: bool, max_rounds: int) -> None:
        """Keep up to ``config.batches_in_flight`` batches submitted, poll them, collect the
        finished ones and resubmit what they left without a result."""
        polled = False
        while self.missing():
            unsent = self.unsubmitted()
            if unsent and len(self.in_flight()) < max(1, self.config.batches_in_flight):
                if self.no_progress >= max_rounds:
                    raise self.give_up(max_rounds)
                part = self.first_part(unsent)
                logger.info("%s: %d of %d requests have no result; submitting %d of them", self.desc,
                            len(self.missing()), len(self.requests), len(part))
                self.submit(part)
                continue
            if polled and not wait:
                return
            finished = False
            for record in self.in_flight():
                batch = self.poll(record)
                if batch.status in TERMINAL:
                    self.collect(record, batch)
                    finished = True
            polled = True
            if not finished:
                if not wait:
                    return
                time.sleep(self.config.poll_interval)

    def first_part(self, custom_ids: list[str]) -> list[str]:
        """The leading requests that fit one batch (OpenAI: 50,000 requests, 200 MB per file);
        larger runs go as several batches, ``config.batches_in_flight`` at a time."""
        part, size = [], 0
        for cid in custom_ids[:MAX_BATCH_REQUESTS]:
            size += len(json.dumps(self.requests[cid], ensure_ascii=False).encode("utf-8")) + 1
            if part and size > MAX_BATCH_BYTES:
                break
            part.append(cid)
        return part

    def give_up(self, max_rounds: int) -> BatchRunError:
        missing = self.missing()
        last = self.state["batches"][-1] if self.state["batches"] else {}
        reason = f"no result after {max_rounds} batch rounds without progress (last: {last.get('status')})"
        self.finish({cid: {"message": reason} for cid in missing})
        errors = "; ".join(last.get("errors") or [])
        return BatchRunError(
            f"{self.desc}: {len(missing)} of {len(self.requests)} requests still have no result after "
            f"{max_rounds} batch rounds without progress (last batch {last.get('id')} {last.get('status')}"
            f"{': ' + errors if errors else ''}); listed in {errors_path(self.results_path)}",
            self.stats,
        )

    def finish(self, extra: dict[str, dict[str, Any]] | None = None) -> None:
        """Fill the final counts and write (or remove) the errors file."""
        extra = extra or {}
        failed = {cid: info for cid, info in self.permanent.items() if cid in self.requests and
                  cid not in self.done}
        failed.update(extra)
        self.stats.failed = len(failed)
        self.stats.pending = len([cid for cid in self.missing() if cid not in extra])
        self.stats.errors = [{"custom_id": cid, "error": dict(info)} for cid, info in failed.items()]
        err_file = errors_path(self.results_path)
        if self.stats.errors:
            write_jsonl(err_file, self.stats.errors)
        elif err_file.exists():
            err_file.unlink()


def run_batch(
    requests_path: str | Path,
    results_path: str | Path,
    *,
    config: LLMConfig,
    desc: str = "LLM",
    client: openai.OpenAI | None = None,
    wait: bool = True,
    max_rounds: int = 3,
    retry_permanent: bool = False,
    requests: list[dict[str, Any]] | None = None,
    done: set[str] | None = None,
) -> BatchStats:
    """Run every request of ``requests_path`` without a result through the OpenAI Batch API.

    With ``wait`` the call returns when every request has a result or a permanent error; without
    it, it polls the recorded batch (or submits one) once and returns (``stats.pending`` says how
    many are still in flight; call again later). Raises :class:`BatchRunError` after
    ``max_rounds`` batches in a row brought no progress, or when the API refuses a call; the
    message never holds the API key. ``retry_permanent`` resubmits requests recorded with a
    permanent (4xx) error. ``requests`` (the file's requests) and ``done`` (answered custom ids)
    save reading the files again when the caller already did.
    """
    requests_path, results_path = Path(requests_path), Path(results_path)
    start = time.monotonic()
    run = _Run(requests_path, results_path, config, desc, client, retry_permanent, requests, done)
    logger.info("%s: %d requests, %d already answered, %d with permanent errors, state %s", desc,
                len(run.requests), len(run.done), len(run.permanent), run.state_file)
    try:
        run.run(wait, max_rounds)
    except openai.OpenAIError as err:
        message = redact(f"{type(err).__name__}: {err}")
        run.finish({cid: {"message": message} for cid in run.missing() if run.active() is None})
        raise BatchRunError(f"{desc}: batch API call failed: {message}", run.stats) from None
    finally:
        run.stats.seconds = time.monotonic() - start
    run.finish()
    if run.stats.pending:
        logger.info("%s: %d requests still in flight in batch %s; run again to collect them", desc,
                    run.stats.pending, (run.active() or {}).get("id"))
    logger.info("%s: %s", desc, run.stats.summary())
    return run.stats
