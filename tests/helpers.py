"""Builders of hand-made LLM results for the parser tests; loading a benchmark script."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
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


def load_benchmark(name: str) -> ModuleType:
    """The module of ``benchmarks/<name>.py`` (benchmarks are scripts, not a package)."""
    return load_script(f"benchmarks/{name}.py")


def load_script(relative: str) -> ModuleType:
    """The module of the repository's script at ``relative`` (e.g. ``stage2/score_likelihood.py``)."""
    path = Path(__file__).resolve().parents[1] / relative
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
