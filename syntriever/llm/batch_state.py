"""The state of a ``batch`` run: the state file recording every batch submitted, the requests,
which have a result and which failed permanently."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from syntriever.jsonl import DataError, read_json, write_json
from syntriever.llm.requests import CHAT_URL, load_requests, load_results

STATE_VERSION = 1


def state_path(requests_path: str | Path) -> Path:
    """The state file of a request file: ``<requests stem>.batch.json`` in the same folder."""
    path = Path(requests_path)
    stem = path.name.removesuffix(".gz").removesuffix(".jsonl")
    return path.with_name(f"{stem}.batch.json")


def now() -> str:
    """The current UTC time, ISO 8601 to the second."""
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
    state = read_json(path, "a malformed batch state; it records paid batches, fix it by hand rather "
                            "than deleting it")
    if not isinstance(state, dict) or not isinstance(state.get("batches"), list):
        raise DataError(f"{path}: not a batch state file (no 'batches' list)")
    state.setdefault("permanent_failures", {})
    return state


class BatchLedger:
    """The requests of a request file, the custom ids answered, and the state file (batches
    submitted, permanent failures), saved as soon as it changes."""

    def __init__(
        self,
        requests_path: Path,
        results_path: Path,
        requests: list[dict[str, Any]] | None = None,
        done: set[str] | None = None,
    ) -> None:
        if requests is None:
            requests = load_requests(requests_path)
        self.requests = {r["custom_id"]: r for r in requests}
        if done is None:
            done = set(load_results(results_path))
        self.done = done & self.requests.keys()
        self.state_file = state_path(requests_path)
        self.state = _load_state(self.state_file, requests_path)

    @property
    def batches(self) -> list[dict[str, Any]]:
        return self.state["batches"]

    @property
    def permanent(self) -> dict[str, dict[str, Any]]:
        """Permanent failures by custom id (status code, message, batch id)."""
        return self.state["permanent_failures"]

    def forget_permanent(self) -> int:
        """Drop the recorded permanent failures (to send them again); return how many there were."""
        count = len(self.permanent)
        self.state["permanent_failures"] = {}
        return count

    def save(self) -> None:
        write_json(self.state_file, self.state)

    def missing(self) -> list[str]:
        """Requests with neither a result nor a permanent error, in file order."""
        return [cid for cid in self.requests if cid not in self.done and cid not in self.permanent]

    def in_flight(self) -> list[dict[str, Any]]:
        """Submitted batches whose results are not collected yet."""
        return [b for b in self.batches if not b.get("collected")]

    def active(self) -> dict[str, Any] | None:
        return next(iter(self.in_flight()), None)

    def unsubmitted(self) -> list[str]:
        """:meth:`missing` requests that no batch in flight holds."""
        held = {cid for b in self.in_flight() for cid in b["custom_ids"]}
        return [cid for cid in self.missing() if cid not in held]

    def payload(self, custom_ids: list[str]) -> bytes:
        """The requests ``custom_ids`` as a JSON-lines upload."""
        lines = (json.dumps(self.requests[cid], ensure_ascii=False) + "\n" for cid in custom_ids)
        return "".join(lines).encode("utf-8")

    def request_size(self, custom_id: str) -> int:
        """Bytes the request takes in an upload, newline included."""
        return len(json.dumps(self.requests[custom_id], ensure_ascii=False).encode("utf-8")) + 1
