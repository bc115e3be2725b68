"""Keep API keys out of logs, result files and error messages."""

from __future__ import annotations

import os
import re

_KEY_VARS = ("OPENAI_API_KEY", "SYNTRIEVER_LLM_API_KEY")
_KEY_SHAPE = re.compile(r"(sk-[A-Za-z0-9_\-]{8,}|Bearer\s+[A-Za-z0-9_\-.]{8,})")


def api_key() -> str | None:
    """The API key, from the environment only."""
    for var in _KEY_VARS:
        value = os.environ.get(var)
        if value:
            return value
    return None


def redact(text: str) -> str:
    """``text`` with any configured key, any ``sk-...`` token and any bearer token masked."""
    for var in _KEY_VARS:
        value = os.environ.get(var)
        if value and len(value) >= 4:
            text = text.replace(value, "***")
    return _KEY_SHAPE.sub("***", text)
