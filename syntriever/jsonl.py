"""JSONL files that survive crashes: atomic whole-file writes, fsync'd appends, torn-tail repair.

Every reader reports the file and line of a malformed record, so bad input never fails silently.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from syntriever.errors import UserError

logger = logging.getLogger(__name__)


class DataError(UserError, ValueError):
    """Bad input data; the message names the file and, where known, the line."""


def _open_binary(path: Path) -> IO[bytes]:
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")  # noqa: SIM115


def _decode(raw: bytes, path: Path, lineno: int) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise DataError(
            f"{path}:{lineno}: not UTF-8 (byte {raw[err.start]:#04x} at column {err.start + 1}); "
            f"convert the file, e.g. iconv -f latin1 -t utf-8"
        ) from None


def read_jsonl(path: str | Path, *, drop_torn_tail: bool = False) -> Iterator[dict[str, Any]]:
    """Yield one dict per non-empty line of ``path`` (see :func:`read_jsonl_numbered`)."""
    for _, record in read_jsonl_numbered(path, drop_torn_tail=drop_torn_tail):
        yield record


def read_jsonl_numbered(
    path: str | Path, *, drop_torn_tail: bool = False
) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line number, dict)`` per non-empty line of ``path`` (``.gz`` allowed).

    A line that is not a JSON object raises :class:`DataError` naming ``path:line``. With
    ``drop_torn_tail`` a last line without its newline that does not parse (a write cut short by a
    crash) is logged and skipped instead.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    with _open_binary(path) as fh:
        lines = iter(fh)
        lineno = 0
        for raw in lines:
            lineno += 1
            line = _decode(raw, path, lineno)
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                is_tail = not line.endswith("\n") and next(lines, None) is None
                if drop_torn_tail and is_tail:
                    logger.warning("%s:%d: dropping torn last line (interrupted write)", path, lineno)
                    return
                raise DataError(f"{path}:{lineno}: malformed JSON ({err.msg})") from None
            if not isinstance(record, dict):
                raise DataError(f"{path}:{lineno}: expected a JSON object, got {type(record).__name__}")
            yield lineno, record


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 24):
            digest.update(chunk)
    return digest.hexdigest()


@contextmanager
def atomic_open(path: str | Path, mode: str = "w") -> Iterator[IO[Any]]:
    """Open a temp file beside ``path`` for writing; on success fsync it and rename it over
    ``path``, on error remove it. Readers never see a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    umask = os.umask(0)
    os.umask(umask)
    os.fchmod(fd, 0o666 & ~umask)  # the permissions a plain open() would give
    try:
        with os.fdopen(fd, mode, encoding=None if "b" in mode else "utf-8") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_jsonl(path: str | Path, rows: Iterable[dict[str, Any]]) -> int:
    """Write ``rows`` to ``path`` atomically; return the row count."""
    count = 0
    with atomic_open(path) as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            count += 1
    return count


def write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_open(path, "wb") as fh:
        fh.write(data)


def write_json(path: str | Path, obj: Any) -> None:
    """Write one JSON document atomically."""
    write_bytes(path, (json.dumps(obj, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))


def read_json(path: str | Path, fix: str) -> Any:
    """One JSON document; a broken one raises a ``DataError`` naming ``path``, the line and ``fix``
    (what to do about it)."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        line = f":{err.lineno}" if isinstance(err, json.JSONDecodeError) else ""
        reason = err.msg if isinstance(err, json.JSONDecodeError) else "not UTF-8"
        raise DataError(f"{path}{line}: not JSON ({reason}); {fix}") from None


def _parses(line: bytes) -> bool:
    try:
        return isinstance(json.loads(line.decode("utf-8")), dict)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return False


def repair_torn_tail(path: Path) -> int:
    """Make ``path`` end with a newline, keeping every complete record: a last line without its
    newline that parses as a JSON object gets the newline appended; one that does not (a write
    cut short by a crash) is cut off. Returns the bytes removed."""
    if not path.exists():
        return 0
    with open(path, "rb+") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        if size == 0:
            return 0
        fh.seek(size - 1)
        if fh.read(1) == b"\n":
            return 0
        # walk back to the previous newline
        pos = size - 1
        block = 4096
        while pos > 0:
            start = max(0, pos - block)
            fh.seek(start)
            chunk = fh.read(pos - start)
            idx = chunk.rfind(b"\n")
            if idx >= 0:
                pos = start + idx + 1
                break
            pos = start
        fh.seek(pos)
        if _parses(fh.read(size - pos)):  # a complete record, only its newline missing
            fh.seek(size)
            fh.write(b"\n")
            fh.flush()
            os.fsync(fh.fileno())
            logger.info("%s: appended the newline missing after the last record", path)
            return 0
        fh.truncate(pos)
        fh.flush()
        os.fsync(fh.fileno())
    removed = size - pos
    logger.warning("%s: removed a torn last line of %d bytes (interrupted write)", path, removed)
    return removed


class JsonlAppender:
    """Append-only JSONL writer; each record is flushed and fsync'd before ``append`` returns.

    Opening repairs a torn last line left by a crash, so the file always holds whole records.
    """

    def __init__(self, path: str | Path, *, fsync: bool = True) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        repair_torn_tail(self.path)
        self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 (closed in close())
        self._fsync = fsync

    def append(self, record: dict[str, Any]) -> None:
        self._fh.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._fh.flush()
        if self._fsync:
            os.fsync(self._fh.fileno())

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> JsonlAppender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
