"""Choosing an LLM backend from command-line flags (:mod:`syntriever.llm.runner` runs it).

``--llm-backend`` picks the runner; without it the choice is (:func:`default_backend`): ``local``
(the embedded llama.cpp server) for an embedded preset or a ``.gguf`` file, else ``online`` when a
base URL is set (``--llm-base-url`` or ``OPENAI_BASE_URL``) or an API key is present, else
``local``. The API key is read from the environment only.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from syntriever.errors import UserError
from syntriever.jsonl import read_json
from syntriever.llm.cost import PRICES_PER_M, Estimate, estimate
from syntriever.llm.local import DEFAULT_PRESET, PRESETS, gguf_path, model_sha256
from syntriever.llm.secrets import api_key, redact
from syntriever.profiles import REMOTE_LLM

logger = logging.getLogger(__name__)


CONCURRENCY = 16  # requests in flight without --llm-concurrency (the embedded server's slots too)


@dataclass
class LLMConfig:
    """Where requests go, and how."""

    backend: str = "local"
    model: str = DEFAULT_PRESET
    base_url: str | None = None
    concurrency: int = CONCURRENCY
    threads: int | None = None
    max_retries: int = 6
    dry_run: bool = False
    poll_interval: float = 30.0
    batches_in_flight: int = 1  # batch backend: batches submitted at once (mind the enqueued-token limit)
    price_in: float | None = None
    price_out: float | None = None

    def __post_init__(self) -> None:
        if (self.price_in is None) != (self.price_out is None):
            raise UserError("--llm-price-in and --llm-price-out go together: give both (USD per 1M input "
                            "and per 1M output tokens), or neither for the model's list price")

    @property
    def prices(self) -> tuple[float, float] | None:
        """USD per 1M input and output tokens: ``(price_in, price_out)`` when given, else the remote
        model's list price (:data:`PRICES_PER_M`); None for the embedded model or an unlisted one."""
        if self.price_in is not None:
            return self.price_in, self.price_out
        return None if self.is_local else PRICES_PER_M.get(self.model)

    def estimate(self, requests: list[dict[str, Any]]) -> Estimate:
        """Tokens and cost of ``requests`` (no cost for the embedded model)."""
        return estimate(requests, None, self.backend == "batch", self.prices)

    @property
    def is_local(self) -> bool:
        return self.backend == "local"

    def model_tag(self) -> str:
        """A short, file-safe name of the model answering the requests."""
        from syntriever.paths import model_tag

        return model_tag(self.model)

    def provenance(self) -> dict[str, str]:
        """Model identity for output files (GGUF sha256 for the embedded model; never the key)."""
        info = {"backend": self.backend, "model": self.model}
        if self.is_local:
            path = gguf_path(self.model)
            info.update(gguf=path.name, gguf_sha256=model_sha256(path))
        elif self.base_url:
            info["base_url"] = redact(self.base_url)
        return info


def add_llm_args(
    parser: argparse.ArgumentParser,
    *,
    default_concurrency: int = CONCURRENCY,
    local_concurrency: int | None = None,
    local_model: str | None = None,
) -> None:
    """Add the ``--llm-*`` flags shared by every LLM stage. ``local_concurrency`` and
    ``local_model`` are the embedded server's slot count and model when a stage needs others."""
    local_concurrency = local_concurrency or default_concurrency
    local_model = local_model or DEFAULT_PRESET
    parser.set_defaults(llm_concurrency_defaults=(default_concurrency, local_concurrency),
                        llm_local_model=local_model)
    group = parser.add_argument_group("LLM")
    group.add_argument(
        "--llm-backend", choices=["batch", "online", "local"], default=None,
        help="runner (default: online if a base URL or OPENAI_API_KEY is set, else local)",
    )
    group.add_argument(
        "--llm-model", default=None,
        help=f"model name; for local a preset {sorted(PRESETS)} or a .gguf path "
        f"(default: {local_model} locally, {REMOTE_LLM} otherwise)",
    )
    group.add_argument("--llm-base-url", default=None, help="OpenAI-compatible base URL (vLLM, Ollama, ...)")
    group.add_argument("--llm-concurrency", type=int, default=None,
                       help=f"parallel requests (online; default {default_concurrency}) or server slots "
                       f"(local; default {local_concurrency})")
    group.add_argument("--llm-threads", type=int, default=None,
                       help="local server CPU threads (default: all cores; 1 leaves a core free)")
    group.add_argument("--llm-max-retries", type=int, default=6)
    group.add_argument("--llm-poll-interval", type=float, default=30.0, help="seconds between batch polls")
    group.add_argument("--llm-batches-in-flight", type=int, default=1,
                       help="batch: batches of a large run submitted at once (the account's enqueued-token "
                       "limit must hold them)")
    group.add_argument("--llm-price-in", type=float, default=None, help="USD per 1M input tokens")
    group.add_argument("--llm-price-out", type=float, default=None, help="USD per 1M output tokens")
    group.add_argument("--dry-run", action="store_true", help="write requests, print the estimate, stop")


def summary_text(out: Path) -> str:
    """The summary written beside an LLM stage's output (settings and model left out) and the
    output's path, for the script to print."""
    summary = read_json(out.with_suffix(".summary.json"), "run the same command again (answers are reused)")
    shown = json.dumps({k: v for k, v in summary.items() if k not in ("settings", "llm")}, indent=2)
    return f"{shown}\nwrote {out}"


def default_backend(model: str | None, base_url: str | None = None) -> str:
    """``local`` for an embedded preset or a ``.gguf`` file (whatever the environment holds),
    else ``online`` when ``base_url`` (or ``OPENAI_BASE_URL``) or an API key is set, else ``local``."""
    if model is not None and (model in PRESETS or model.endswith(".gguf")):
        return "local"
    return "online" if base_url or os.environ.get("OPENAI_BASE_URL") or api_key() else "local"


def default_model(local_model: str) -> str:
    """The LLM a script means without ``--llm-model``: ``local_model`` (an embedded preset), or
    :data:`REMOTE_LLM` when the environment points at an API (an API key or ``OPENAI_BASE_URL``).
    The scripts that call the LLM and the trainers that read its output decide it here alike."""
    return local_model if default_backend(None) == "local" else REMOTE_LLM


def check_local_model(model: str) -> None:
    """Refuse (:class:`UserError`) a model the embedded server cannot load, before anything runs."""
    if model not in PRESETS and not Path(model).expanduser().is_file():
        raise UserError(f"LLM {model!r} is neither an embedded model ({', '.join(sorted(PRESETS))}) "
                        "nor a .gguf file; an API model needs OPENAI_API_KEY or --llm-backend online")


def config_from_args(args: argparse.Namespace) -> LLMConfig:
    """Resolve the flags (and the environment) into an :class:`LLMConfig`."""
    base_url = args.llm_base_url or os.environ.get("OPENAI_BASE_URL")
    backend = args.llm_backend or default_backend(args.llm_model, base_url)
    local_model = getattr(args, "llm_local_model", DEFAULT_PRESET)
    model = args.llm_model or (local_model if backend == "local" else REMOTE_LLM)
    if backend == "local":
        check_local_model(model)
    remote_default, local_default = getattr(args, "llm_concurrency_defaults", (CONCURRENCY,) * 2)
    concurrency = args.llm_concurrency or (local_default if backend == "local" else remote_default)
    return LLMConfig(
        backend=backend, model=model, base_url=base_url, concurrency=concurrency,
        threads=args.llm_threads,
        max_retries=args.llm_max_retries, dry_run=args.dry_run, poll_interval=args.llm_poll_interval,
        batches_in_flight=args.llm_batches_in_flight,
        price_in=args.llm_price_in, price_out=args.llm_price_out,
    )
