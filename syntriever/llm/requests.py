"""Request and result files in the OpenAI Batch formats.

Input line: ``{"custom_id", "method": "POST", "url": "/v1/chat/completions", "body": {...}}``.
Output line: ``{"id", "custom_id", "response": {"status_code", "request_id", "body"}, "error"}``
where ``body`` is a chat completion. The same request file can be uploaded to OpenAI, run by
vLLM's batch runner, or executed by this package's runners.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from syntriever.jsonl import DataError, read_jsonl, read_jsonl_numbered

CHAT_URL = "/v1/chat/completions"


def chat_request(
    custom_id: str,
    messages: list[dict[str, str]],
    *,
    model: str,
    temperature: float,
    max_tokens: int,
    logprobs: bool = False,
    top_logprobs: int | None = None,
    seed: int | None = None,
) -> dict[str, Any]:
    """One chat-completion request line in the Batch input format."""
    body: dict[str, Any] = {
        "model": model,
        "messages": messages,
        "temperature": temperature,
        "max_tokens": max_tokens,
    }
    if logprobs:
        body["logprobs"] = True
        body["top_logprobs"] = top_logprobs or 10
    if seed is not None:
        body["seed"] = seed
    return {"custom_id": custom_id, "method": "POST", "url": CHAT_URL, "body": body}


def validate_request(record: dict[str, Any], where: str) -> None:
    """Raise :class:`DataError` (naming ``where``) unless ``record`` is a valid request line."""
    cid = record.get("custom_id")
    if not isinstance(cid, str) or not cid:
        raise DataError(f"{where}: 'custom_id' must be a non-empty string")
    if record.get("method") != "POST":
        raise DataError(f"{where}: 'method' must be 'POST' (custom_id {cid})")
    if record.get("url") != CHAT_URL:
        raise DataError(f"{where}: 'url' must be {CHAT_URL!r} (custom_id {cid})")
    body = record.get("body")
    if not isinstance(body, dict):
        raise DataError(f"{where}: 'body' must be an object (custom_id {cid})")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise DataError(f"{where}: 'body.messages' must be a non-empty list (custom_id {cid})")
    for msg in messages:
        if not isinstance(msg, dict) or "role" not in msg or "content" not in msg:
            raise DataError(f"{where}: every message needs 'role' and 'content' (custom_id {cid})")


def load_requests(path: str | Path) -> list[dict[str, Any]]:
    """Read and validate a request file; ``custom_id``s must be unique."""
    path = Path(path)
    requests: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for line, rec in read_jsonl_numbered(path):
        validate_request(rec, f"{path}:{line}")
        cid = rec["custom_id"]
        if cid in seen:
            raise DataError(f"{path}:{line}: duplicate custom_id {cid!r} (first on line {seen[cid]})")
        seen[cid] = line
        requests.append(rec)
    if not requests:
        raise DataError(f"{path}: no requests")
    return requests


def load_results(path: str | Path) -> dict[str, dict[str, Any]]:
    """Read a result file into ``{custom_id: record}``; a torn last line is dropped.

    Records with an ``error`` or a non-200 response are left out: they are not results, and a
    re-run sends them again.
    """
    path = Path(path)
    if not path.exists():
        return {}
    results: dict[str, dict[str, Any]] = {}
    for rec in read_jsonl(path, drop_torn_tail=True):
        if is_success(rec):
            results[rec["custom_id"]] = rec
    return results


def is_success(record: dict[str, Any]) -> bool:
    """True for a result line holding a 200 response with a well-formed body (a line that is not,
    e.g. damaged by hand, is no result: a re-run sends its request again)."""
    response = record.get("response") or {}
    return (
        bool(record.get("custom_id"))
        and not record.get("error")
        and response.get("status_code") == 200
        and isinstance(response.get("body"), dict)
        and _well_formed(response["body"])
    )


def _well_formed(body: dict[str, Any]) -> bool:
    """Whether ``body``'s first choice has the types the readers below expect (content may be
    None: an empty answer, counted as unparseable downstream)."""
    choices = body.get("choices")
    if "choices" not in body:  # not a chat completion (e.g. a test's bare body): nothing to check
        return True
    if not (isinstance(choices, list) and choices and isinstance(choices[0], dict)):
        return False
    message, logprobs = choices[0].get("message"), choices[0].get("logprobs")
    if not isinstance(message, dict | None) or not isinstance((message or {}).get("content"), str | None):
        return False
    entries = (logprobs or {}).get("content") or [] if isinstance(logprobs, dict | None) else None
    if not isinstance(entries, list):
        return False
    return all(isinstance(e, dict) and _is_token(e, "logprob" not in e)
               and isinstance(e.get("top_logprobs") or [], list)
               and all(_is_token(a) for a in e.get("top_logprobs") or []) for e in entries)


def _is_token(entry: Any, without_logprob: bool = False) -> bool:
    """A log-probability entry (the compact answers keep a logprob only where it is read)."""
    return (isinstance(entry, dict) and isinstance(entry.get("token"), str)
            and (without_logprob or isinstance(entry.get("logprob"), int | float)))


def result_line(custom_id: str, body: dict[str, Any], request_id: str = "") -> dict[str, Any]:
    """A successful result line in the Batch output format."""
    return {
        "id": f"result-{custom_id}",
        "custom_id": custom_id,
        "response": {"status_code": 200, "request_id": request_id, "body": body},
        "error": None,
    }


def _choice(result: dict[str, Any]) -> dict[str, Any]:
    try:
        return result["response"]["body"]["choices"][0]
    except (KeyError, IndexError, TypeError):
        raise DataError(f"result {result.get('custom_id')!r} holds no choice") from None


def answer_text(result: dict[str, Any]) -> str:
    """The generated text of a result line ('' when the model returned no content)."""
    return (_choice(result).get("message") or {}).get("content") or ""


def finish_reason(result: dict[str, Any]) -> str:
    """Why generation stopped (``stop``, ``length``, ...)."""
    return _choice(result).get("finish_reason") or ""


def _logprob_content(result: dict[str, Any]) -> list[dict[str, Any]]:
    return (_choice(result).get("logprobs") or {}).get("content") or []


def generated_tokens(result: dict[str, Any]) -> list[str]:
    """The generated tokens of a result that asked for log-probabilities (else empty)."""
    return [entry.get("token", "") for entry in _logprob_content(result)]


def top_logprobs(result: dict[str, Any], position: int = 0) -> dict[str, float]:
    """``{token: logprob}`` of the top alternatives at generated token ``position``.

    Empty when the request did not ask for log-probabilities or the answer is shorter.
    """
    content = _logprob_content(result)
    if position >= len(content):
        return {}
    entry = content[position]
    alternatives = {alt["token"]: alt["logprob"] for alt in entry.get("top_logprobs") or []}
    alternatives.setdefault(entry["token"], entry["logprob"])
    return alternatives


def token_logprob(alternatives: dict[str, float], words: Iterable[str]) -> float:
    """Log of the summed probability of the tokens that spell one of ``words`` (case and
    surrounding spaces ignored); ``-inf`` when none of them is among the alternatives."""
    wanted = {w.strip().lower() for w in words}
    probs = [math.exp(lp) for tok, lp in alternatives.items() if tok.strip().lower() in wanted]
    return math.log(sum(probs)) if probs else -math.inf


def logprob_margin(
    alternatives: dict[str, float], first: Iterable[str], second: Iterable[str]
) -> float | None:
    """log P(``first``) - log P(``second``) among ``alternatives`` (see :func:`token_logprob`).

    None when neither is listed, or when only one token is (no alternatives returned: nothing to
    compare with); when only one of the two is, the other is bounded by the lowest listed
    log-probability (it ranked below every alternative returned).
    """
    if len(alternatives) < 2:
        return None
    lp_first, lp_second = token_logprob(alternatives, first), token_logprob(alternatives, second)
    if math.isinf(lp_first) and math.isinf(lp_second):
        return None
    floor = min(alternatives.values())
    return (lp_first if not math.isinf(lp_first) else floor) - (
        lp_second if not math.isinf(lp_second) else floor
    )


def usage(result: dict[str, Any]) -> tuple[int, int]:
    """(prompt tokens, completion tokens) reported for a result line."""
    body = (result.get("response") or {}).get("body") or {}
    used = body.get("usage") or {}
    return int(used.get("prompt_tokens") or 0), int(used.get("completion_tokens") or 0)
