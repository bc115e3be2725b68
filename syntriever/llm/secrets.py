"""Keep API keys out of logs, result files and error messages."""

from __future__ import annotations

import os
import re

_KEY_VARS = ("OPENAI_API_KEY", "SYNTRIEVER_LLM_API_KEY")
_KEY_SHAPE = re.compile(r"(sk-[A-Za-z0-9_\-]{8,}|Bearer\s+[A-Za-z0-9_\-.]{8,})")
_URL_USERINFO = re.compile(r"(?<=://)[^/@\s]+@")  # https://user:password@host
_URL_SECRET = re.compile(
    r"(?i)([?&](?:api[-_]?key|key|token|access[-_]?token|secret|sig|signature|password)=)[^&#\s]+")


def api_key() -> str | None:
    """The API key, from the environment only."""
    for var in _KEY_VARS:
        value = os.environ.get(var)
        if value:
            return value
    return None


def redact(text: str) -> str:
    """``text`` with any configured key, any ``sk-...`` token, any bearer token, the credentials
    of a URL (``user:password@``) and key-like URL parameters (``?api-key=...``) masked."""
    for var in _KEY_VARS:
        value = os.environ.get(var)
        if value and len(value) >= 4:
            text = text.replace(value, "***")
    text = _URL_USERINFO.sub("***@", text)
    text = _URL_SECRET.sub(r"\1***", text)
    return _KEY_SHAPE.sub("***", text)
