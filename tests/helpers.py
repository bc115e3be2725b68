"""Builders of hand-made LLM results for the parser tests."""

from __future__ import annotations

from typing import Any

from syntriever.llm.requests import result_line


def result(cid: str, tokens: list[tuple[str, dict[str, float]]], prompt_tokens: int = 100) -> dict[str, Any]:
    """A Batch output line whose answer is the given tokens, each with its top alternatives."""
    content = [
        {"token": tok, "logprob": alts.get(tok, max(alts.values())),
         "top_logprobs": [{"token": t, "logprob": lp} for t, lp in alts.items()]}
        for tok, alts in tokens
    ]
    body = {
        "choices": [{
            "index": 0, "finish_reason": "stop",
            "message": {"role": "assistant", "content": "".join(t for t, _ in tokens)},
            "logprobs": {"content": content},
        }],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": len(tokens)},
    }
    return result_line(cid, body)
