"""A local stand-in for the OpenAI Files and Batches API, for tests.

Batches run for real: each request line's body is POSTed to an upstream OpenAI-compatible server
(e.g. the embedded llama.cpp server) in a background thread, and the answers are written to an
output file in the Batch output format. Knobs make batches expire early or answer chosen requests
with a 400, and counters prove what was executed. Every call must carry the expected bearer key;
a wrong key gets a 401 whose message echoes the header (like careless servers do), so tests can
check that the client side redacts it.
"""

from __future__ import annotations

import email.parser
import email.policy
import itertools
import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

logger = logging.getLogger(__name__)

CHAT_URL = "/v1/chat/completions"
EXPIRED_MESSAGE = "This request could not be executed before the completion window expired."


class FakeOpenAI:
    """Files + Batches endpoints on 127.0.0.1; use as a context manager.

    ``expire_after=N`` makes the first ``expire_batches`` batches stop after N requests and end
    ``expired`` (with their partial output file); ``fail_ids`` are answered with a 400 line in the
    error file; ``hold()`` keeps new batches ``validating`` until ``release()``;
    ``lose_create_responses=N`` creates the next N batches but answers their creation with a 500.
    """

    def __init__(
        self,
        upstream: str | None = None,
        *,
        api_key: str = "sk-fake-expected-key-0000",
        expire_after: int | None = None,
        expire_batches: int = 1,
        fail_ids: set[str] | frozenset[str] = frozenset(),
        workers: int = 2,
        lose_create_responses: int = 0,
    ) -> None:
        self.upstream = upstream.rstrip("/") if upstream else None
        self.api_key = api_key
        self.expire_after = expire_after
        self.expire_batches = expire_batches
        self.fail_ids = set(fail_ids)
        self.workers = workers
        self.lose_create_responses = lose_create_responses
        self.files: dict[str, dict[str, Any]] = {}
        self.contents: dict[str, bytes] = {}
        self.batches: dict[str, dict[str, Any]] = {}
        self.batches_created = 0
        self.lines_executed = 0
        self.executed_ids: Counter[str] = Counter()
        self.unauthorized = 0
        self.chat_failures: list[int] = []  # status codes answered to the next chat requests
        self.chat_calls = 0
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._gate = threading.Event()
        self._gate.set()
        self._threads: list[threading.Thread] = []
        self._server: ThreadingHTTPServer | None = None

    # -- lifecycle -------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        assert self._server is not None, "server not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def start(self) -> FakeOpenAI:
        fake = self

        class Handler(_Handler):
            server_fake = fake

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="fake-openai", daemon=True).start()
        return self

    def stop(self) -> None:
        self._gate.set()
        for thread in self._threads:
            thread.join(timeout=60)
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def hold(self) -> None:
        """Keep batches created from now on in ``validating`` until :meth:`release`."""
        self._gate.clear()

    def release(self) -> None:
        self._gate.set()

    def wait_idle(self, timeout: float = 120.0) -> None:
        """Wait until every batch has finished executing."""
        for thread in list(self._threads):
            thread.join(timeout=timeout)

    # -- objects ---------------------------------------------------------------------------------

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}-fake{next(self._ids):04d}"

    def add_file(self, data: bytes, filename: str, purpose: str) -> dict[str, Any]:
        with self._lock:
            file_id = self._new_id("file")
            obj = {
                "id": file_id, "object": "file", "bytes": len(data), "created_at": int(time.time()),
                "filename": filename, "purpose": purpose, "status": "processed",
                "expires_at": None, "status_details": None,
            }
            self.files[file_id] = obj
            self.contents[file_id] = data
        return obj

    def create_batch(self, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        file_id = params.get("input_file_id")
        if file_id not in self.contents:
            return 404, _error(f"No such File object: {file_id}", "invalid_request_error")
        if params.get("endpoint") != CHAT_URL or params.get("completion_window") != "24h":
            message = "only /v1/chat/completions with a 24h window is supported"
            return 400, _error(message, "invalid_request_error")
        text = self.contents[file_id].decode("utf-8")
        lines = [json.loads(line) for line in text.splitlines() if line.strip()]
        with self._lock:
            self.batches_created += 1
            number = self.batches_created
            batch_id = self._new_id("batch")
            now = int(time.time())
            batch = {
                "id": batch_id, "object": "batch", "endpoint": CHAT_URL, "errors": None,
                "input_file_id": file_id, "completion_window": "24h", "status": "validating",
                "output_file_id": None, "error_file_id": None, "created_at": now,
                "in_progress_at": None, "expires_at": now + 86400, "finalizing_at": None,
                "completed_at": None, "failed_at": None, "expired_at": None, "cancelling_at": None,
                "cancelled_at": None, "request_counts": {"total": len(lines), "completed": 0, "failed": 0},
                "metadata": params.get("metadata"),
            }
            self.batches[batch_id] = batch
        limit = self.expire_after if number <= self.expire_batches else None
        thread = threading.Thread(target=self._execute, args=(batch, lines, limit), daemon=True)
        self._threads.append(thread)
        thread.start()
        return 200, self.batch_view(batch_id)

    def batch_view(self, batch_id: str) -> dict[str, Any]:
        with self._lock:
            batch = self.batches[batch_id]
            return json.loads(json.dumps(batch))

    # -- execution -------------------------------------------------------------------------------

    def forward(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """POST a chat-completion body upstream; (HTTP status, parsed answer)."""
        if self.upstream is None:
            return 502, _error("no upstream configured", "server_error")
        request = urllib.request.Request(
            self.upstream + "/chat/completions", data=json.dumps(body).encode("utf-8"),
            headers={"Content-Type": "application/json"}, method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=300) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as err:
            raw = err.read()
            try:
                return err.code, json.loads(raw)
            except ValueError:
                return err.code, _error(raw.decode("utf-8", "replace")[:300], "server_error")
        except OSError as err:
            return 502, _error(f"upstream unreachable: {err}", "server_error")

    def _answer(self, line: dict[str, Any]) -> tuple[bool, dict[str, Any]]:
        """Run one request line; (success, output line)."""
        cid = line.get("custom_id")
        row_id = self._new_id("batch_req")
        with self._lock:
            self.lines_executed += 1
            self.executed_ids[cid] += 1
        if cid in self.fail_ids:
            body = _error(f"Invalid request {cid} (fake permanent failure)", "invalid_request_error")
            return False, _row(row_id, cid, 400, body)
        status, answer = self.forward(line["body"])
        return status == 200, _row(row_id, cid, status, answer)

    def _execute(self, batch: dict[str, Any], lines: list[dict[str, Any]], limit: int | None) -> None:
        self._gate.wait()
        with self._lock:
            batch.update(status="in_progress", in_progress_at=int(time.time()))
        todo = lines if limit is None else lines[:limit]
        outputs: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []

        def one(line: dict[str, Any]) -> None:
            ok, row = self._answer(line)
            with self._lock:
                (outputs if ok else errors).append(row)
                batch["request_counts"]["completed" if ok else "failed"] += 1

        with ThreadPoolExecutor(self.workers) as pool:
            list(pool.map(one, todo))
        expired = limit is not None and limit < len(lines)
        for line in lines[len(todo):]:
            errors.append({
                "id": self._new_id("batch_req"), "custom_id": line.get("custom_id"), "response": None,
                "error": {"code": "batch_expired", "message": EXPIRED_MESSAGE},
            })
        with self._lock:
            batch.update(status="finalizing", finalizing_at=int(time.time()))
        out_id = self._jsonl_file(outputs, batch["id"], "output")
        err_id = self._jsonl_file(errors, batch["id"], "error")
        with self._lock:
            now = int(time.time())
            batch.update(output_file_id=out_id, error_file_id=err_id)
            if expired:
                batch["request_counts"]["failed"] += len(lines) - len(todo)
                batch.update(status="expired", expired_at=now)
            else:
                batch.update(status="completed", completed_at=now)

    def _jsonl_file(self, rows: list[dict[str, Any]], batch_id: str, kind: str) -> str | None:
        if not rows:
            return None
        data = "".join(json.dumps(row) + "\n" for row in rows).encode("utf-8")
        return self.add_file(data, f"{batch_id}_{kind}.jsonl", "batch_output")["id"]


def _error(message: str, kind: str, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def _row(row_id: str, cid: str | None, status: int, body: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row_id, "custom_id": cid,
        "response": {"status_code": status, "request_id": f"req-{row_id}", "body": body},
        "error": None,
    }


def _multipart(content_type: str, body: bytes) -> dict[str, tuple[str | None, bytes]]:
    """``{field name: (filename, bytes)}`` of a multipart/form-data body."""
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode("latin-1")
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    fields: dict[str, tuple[str | None, bytes]] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if name:
            fields[str(name)] = (part.get_filename(), part.get_payload(decode=True) or b"")
    return fields


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_fake: FakeOpenAI

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("fake openai: " + format, *args)

    def _send(
        self, status: int, payload: dict[str, Any] | bytes, content_type: str = "application/json"
    ) -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-request-id", f"req-{time.monotonic_ns()}")
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _authorized(self) -> bool:
        header = self.headers.get("Authorization") or ""
        if header == f"Bearer {self.server_fake.api_key}":
            return True
        self.server_fake.unauthorized += 1
        # Deliberately hostile: echo the credential the caller sent.
        self._send(401, _error(f"Incorrect API key provided: {header}", "invalid_request_error",
                               "invalid_api_key"))
        return False

    def do_GET(self) -> None:
        self._body()
        if not self._authorized():
            return
        fake = self.server_fake
        parts = self.path.split("?", 1)[0].strip("/").split("/")
        if parts[:2] == ["v1", "files"] and len(parts) in (3, 4) and parts[2] in fake.files:
            if len(parts) == 4 and parts[3] == "content":
                self._send(200, fake.contents[parts[2]], "application/octet-stream")
            elif len(parts) == 3:
                self._send(200, fake.files[parts[2]])
            else:
                self._send(404, _error("unknown route", "invalid_request_error"))
        elif parts == ["v1", "batches"]:
            data = [fake.batch_view(batch_id) for batch_id in reversed(list(fake.batches))]
            self._send(200, {"object": "list", "data": data, "has_more": False,
                             "first_id": data[0]["id"] if data else None,
                             "last_id": data[-1]["id"] if data else None})
        elif parts[:2] == ["v1", "batches"] and len(parts) == 3 and parts[2] in fake.batches:
            self._send(200, fake.batch_view(parts[2]))
        else:
            self._send(404, _error(f"not found: {self.path}", "invalid_request_error"))

    def do_POST(self) -> None:
        body = self._body()
        if not self._authorized():
            return
        fake = self.server_fake
        path = self.path.split("?", 1)[0].rstrip("/")
        if path == "/v1/files":
            fields = _multipart(self.headers.get("Content-Type") or "", body)
            if "file" not in fields:
                self._send(400, _error("missing 'file' field", "invalid_request_error"))
                return
            purpose = fields.get("purpose", (None, b""))[1].decode("utf-8")
            filename, data = fields["file"]
            self._send(200, fake.add_file(data, filename or "upload.jsonl", purpose))
        elif path == "/v1/batches":
            status, payload = fake.create_batch(json.loads(body or b"{}"))
            if status == 200 and fake.lose_create_responses > 0:
                fake.lose_create_responses -= 1
                status, payload = 500, _error("server error (fake; the batch was created)", "server_error")
            self._send(status, payload)
        elif path == "/v1/chat/completions":
            with fake._lock:
                fake.chat_calls += 1
                failure = fake.chat_failures.pop(0) if fake.chat_failures else None
            if failure is not None:
                self._send(failure, _error(f"injected failure {failure}", "server_error"))
                return
            self._send(*fake.forward(json.loads(body or b"{}")))
        else:
            self._send(404, _error(f"not found: {self.path}", "invalid_request_error"))
