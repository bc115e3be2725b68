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
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai

from syntriever.jsonl import JsonlAppender, write_jsonl
from syntriever.llm.batch_api import BatchApi, BatchRunError, batch_errors, request_counts
from syntriever.llm.batch_state import BatchLedger, now, state_path
from syntriever.llm.config import LLMConfig
from syntriever.llm.online import RunStats, errors_path
from syntriever.llm.requests import is_success, usage
from syntriever.llm.secrets import redact

logger = logging.getLogger(__name__)

__all__ = ["BatchRunError", "BatchStats", "run_batch", "state_path"]

TERMINAL = frozenset({"completed", "expired", "failed", "cancelled"})
TRANSIENT_STATUS = frozenset({408, 429})
NOT_RUN_CODES = frozenset({"batch_expired", "batch_cancelled"})
MAX_BATCH_REQUESTS = 50_000
MAX_BATCH_BYTES = 190 * 1024 * 1024


@dataclass
class BatchStats(RunStats):
    """:class:`RunStats` plus what is still in flight (``pending``) and the batches created."""

    pending: int = 0
    batches_created: int = 0


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
    """One call of :func:`run_batch`: submit, poll and collect batches until every request has a
    result (the state lives in a :class:`BatchLedger`, the API calls in a :class:`BatchApi`)."""

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
        self.ledger = BatchLedger(requests_path, results_path, requests, done)
        if retry_permanent and self.ledger.permanent:
            logger.info("%s: sending %d requests with permanent errors again", desc,
                        self.ledger.forget_permanent())
        self.stats = BatchStats(total=len(self.ledger.requests), skipped=len(self.ledger.done))
        self.api = BatchApi(config, desc, client, self.stats)
        self.no_progress = 0

    # -- submitting ------------------------------------------------------------------------------

    def first_part(self, custom_ids: list[str]) -> list[str]:
        """The leading requests that fit one batch (OpenAI: 50,000 requests, 200 MB per file);
        larger runs go as several batches, ``config.batches_in_flight`` at a time."""
        part, size = [], 0
        for cid in custom_ids[:MAX_BATCH_REQUESTS]:
            size += self.ledger.request_size(cid)
            if part and size > MAX_BATCH_BYTES:
                break
            part.append(cid)
        return part

    def submit(self, custom_ids: list[str]) -> dict[str, Any]:
        """Upload the requests ``custom_ids`` as a new input file and create a batch for them."""
        ledger = self.ledger
        number = len(ledger.batches) + 1
        stem = ledger.state_file.name.removesuffix(".batch.json")
        payload = ledger.payload(custom_ids)
        upload = self.api.upload(f"{stem}.part{number}.jsonl", payload)
        metadata = {"requests_file": self.requests_path.name[:500], "part": str(number)}
        batch = self.api.create(upload.id, metadata)
        record = {
            "id": batch.id,
            "input_file_id": upload.id,
            "custom_ids": custom_ids,
            "status": batch.status,
            "created_at": batch.created_at,
            "submitted_at": now(),
            "request_counts": request_counts(batch),
            "output_file_id": None,
            "error_file_id": None,
            "collected": False,
            "collected_at": None,
        }
        ledger.batches.append(record)
        ledger.save()  # before anything else can fail: this batch is being paid for
        earlier = {cid for b in ledger.batches[:-1] for cid in b["custom_ids"]}
        self.stats.sent += len(custom_ids)
        self.stats.retries += sum(cid in earlier for cid in custom_ids)
        self.stats.batches_created += 1
        logger.info("%s: submitted batch %s with %d requests (input file %s, %d bytes)", self.desc,
                    batch.id, len(custom_ids), upload.id, len(payload))
        return record

    # -- polling and collecting ------------------------------------------------------------------

    def poll(self, record: dict[str, Any]) -> Any:
        """Retrieve a batch once, log one status line and record its status."""
        batch = self.api.retrieve(record["id"])
        counts = request_counts(batch)
        elapsed = max(0.0, time.time() - (batch.created_at or time.time()))
        logger.info("%s: batch %s %s: %d/%d completed, %d failed, %.0f s elapsed", self.desc,
                    batch.id, batch.status, counts["completed"], counts["total"], counts["failed"],
                    elapsed)
        if batch.status != record["status"] or counts != record.get("request_counts"):
            record["status"], record["request_counts"] = batch.status, counts
            self.ledger.save()
        return batch

    def _take(self, rows: list[dict[str, Any]], batch_id: str) -> tuple[Counter[str], set[str]]:
        """Append the successes among a batch's lines to the results and record permanent
        failures; return the counts (``new_ok``, ``new_permanent``, ``transient``, ``expired``,
        ``already``) and the custom ids the lines answered."""
        ledger, tally, seen = self.ledger, Counter[str](), set()
        with JsonlAppender(self.results_path) as out:
            for row in rows:
                cid = row.get("custom_id")
                if cid not in ledger.requests:
                    logger.warning("%s: batch %s answered an unknown custom_id %r; ignored", self.desc,
                                   batch_id, cid)
                    continue
                seen.add(cid)
                if is_success(row):
                    if cid in ledger.done:
                        tally["already"] += 1
                        continue
                    out.append(row)
                    ledger.done.add(cid)
                    ledger.permanent.pop(cid, None)
                    self.stats.succeeded += 1
                    prompt, completion = usage(row)
                    self.stats.prompt_tokens += prompt
                    self.stats.completion_tokens += completion
                    tally["new_ok"] += 1
                    continue
                if cid in ledger.done:
                    continue
                if (row.get("error") or {}).get("code") in NOT_RUN_CODES:
                    tally["expired"] += 1
                    continue
                status, message = _failure(row)
                if _is_permanent(status):
                    if cid not in ledger.permanent:
                        tally["new_permanent"] += 1
                    ledger.permanent[cid] = {"status_code": status, "message": message, "batch_id": batch_id}
                else:
                    tally["transient"] += 1
        return tally, seen

    def collect(self, record: dict[str, Any], batch: Any) -> None:
        """Append a finished batch's successes to the results; classify what failed."""
        rows = []
        if batch.output_file_id:
            rows += self.api.download(batch.output_file_id)
        if batch.error_file_id:
            rows += self.api.download(batch.error_file_id)
        tally, seen = self._take(rows, batch.id)
        wanted = set(record["custom_ids"])
        not_run = tally["expired"] + len(wanted - seen - self.ledger.done)
        record.update(
            status=batch.status,
            request_counts=request_counts(batch),
            output_file_id=batch.output_file_id,
            error_file_id=batch.error_file_id,
            collected=True,
            collected_at=now(),
            results=tally["new_ok"],
            permanent_failures=sum(1 for cid in wanted if cid in self.ledger.permanent),
            transient_failures=tally["transient"],
            not_run=not_run,
        )
        errors = batch_errors(batch)
        if errors:
            record["errors"] = errors
        self.ledger.save()
        clean = batch.status == "completed" and not (tally["new_permanent"] or tally["transient"] or not_run)
        log = logger.info if clean else logger.warning
        log("%s: batch %s %s: %d new results, %d failed permanently, %d failed transiently, "
            "%d not run (expired/cancelled)%s%s", self.desc, batch.id, batch.status, tally["new_ok"],
            tally["new_permanent"], tally["transient"], not_run,
            f", {tally['already']} already present" if tally["already"] else "",
            f"; errors: {'; '.join(errors)}" if errors else "")
        self.no_progress = 0 if tally["new_ok"] or tally["new_permanent"] else self.no_progress + 1

    # -- the loop --------------------------------------------------------------------------------

    def run(self, wait: bool, max_rounds: int) -> None:
        """Keep up to ``config.batches_in_flight`` batches submitted, poll them, collect the
        finished ones and resubmit what they left without a result."""
        ledger, polled = self.ledger, False
        while ledger.missing():
            unsent = ledger.unsubmitted()
            if unsent and len(ledger.in_flight()) < max(1, self.config.batches_in_flight):
                if self.no_progress >= max_rounds:
                    raise self.give_up(max_rounds)
                part = self.first_part(unsent)
                logger.info("%s: %d of %d requests have no result; submitting %d of them", self.desc,
                            len(ledger.missing()), len(ledger.requests), len(part))
                self.submit(part)
                continue
            if polled and not wait:
                return
            finished = False
            for record in ledger.in_flight():
                batch = self.poll(record)
                if batch.status in TERMINAL:
                    self.collect(record, batch)
                    finished = True
            polled = True
            if not finished:
                if not wait:
                    return
                time.sleep(self.config.poll_interval)

    def give_up(self, max_rounds: int) -> BatchRunError:
        missing = self.ledger.missing()
        last = self.ledger.batches[-1] if self.ledger.batches else {}
        reason = f"no result after {max_rounds} batch rounds without progress (last: {last.get('status')})"
        self.finish({cid: {"message": reason} for cid in missing})
        errors = "; ".join(last.get("errors") or [])
        return BatchRunError(
            f"{self.desc}: {len(missing)} of {len(self.ledger.requests)} requests still have no result after "
            f"{max_rounds} batch rounds without progress (last batch {last.get('id')} {last.get('status')}"
            f"{': ' + errors if errors else ''}); listed in {errors_path(self.results_path)}",
            self.stats,
        )

    def finish(self, extra: dict[str, dict[str, Any]] | None = None) -> None:
        """Fill the final counts and write (or remove) the errors file."""
        extra, ledger = extra or {}, self.ledger
        failed = {cid: info for cid, info in ledger.permanent.items() if cid in ledger.requests and
                  cid not in ledger.done}
        failed.update(extra)
        self.stats.failed = len(failed)
        self.stats.pending = len([cid for cid in ledger.missing() if cid not in extra])
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
    ledger = run.ledger
    logger.info("%s: %d requests, %d already answered, %d with permanent errors, state %s", desc,
                len(ledger.requests), len(ledger.done), len(ledger.permanent), ledger.state_file)
    try:
        run.run(wait, max_rounds)
    except openai.OpenAIError as err:
        message = redact(f"{type(err).__name__}: {err}")
        run.finish({cid: {"message": message} for cid in ledger.missing() if ledger.active() is None})
        raise BatchRunError(f"{desc}: batch API call failed: {message}", run.stats) from None
    finally:
        run.stats.seconds = time.monotonic() - start
    run.finish()
    if run.stats.pending:
        logger.info("%s: %d requests still in flight in batch %s; run again to collect them", desc,
                    run.stats.pending, (ledger.active() or {}).get("id"))
    logger.info("%s: %s", desc, run.stats.summary())
    return run.stats
