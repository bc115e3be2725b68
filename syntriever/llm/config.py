"""Choosing and running an LLM backend from command-line flags.

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
from syntriever.jsonl import write_jsonl
from syntriever.llm.cost import estimate
from syntriever.llm.local import DEFAULT_PRESET, PRESETS, LocalServer, gguf_path, model_sha256
from syntriever.llm.online import RunStats, errors_path, run_online
from syntriever.llm.requests import load_requests, load_results, usage
from syntriever.llm.secrets import api_key, redact

logger = logging.getLogger(__name__)


@dataclass
class LLMConfig:
    """Where requests go, and how."""

    backend: str = "local"
    model: str = DEFAULT_PRESET
    base_url: str | None = None
    concurrency: int = 16
    threads: int | None = None
    max_retries: int = 6
    dry_run: bool = False
    poll_interval: float = 30.0
    batches_in_flight: int = 1  # batch backend: batches submitted at once (mind the enqueued-token limit)
    price_in: float | None = None
    price_out: float | None = None

    @property
    def is_local(self) -> bool:
        return self.backend == "local"

    def model_tag(self) -> str:
        """A short, file-safe name of the model answering the requests."""
        from syntriever.paths import file_safe

        return file_safe(self.model.rsplit("/", 1)[-1].removesuffix(".gguf"))

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
    default_concurrency: int = 16,
    local_concurrency: int | None = None,
    local_model: str = DEFAULT_PRESET,
) -> None:
    """Add the ``--llm-*`` flags shared by every LLM stage. ``local_concurrency`` and
    ``local_model`` are the embedded server's slot count and model when a stage needs others."""
    local_concurrency = local_concurrency or default_concurrency
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
        f"(default: {local_model} locally, gpt-4o otherwise)",
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


def parse_llm_cli(
    parser: argparse.ArgumentParser,
    *,
    default_concurrency: int = 16,
    local_concurrency: int | None = None,
    local_model: str = DEFAULT_PRESET,
) -> tuple[argparse.Namespace, LLMConfig]:
    """Add the ``--llm-*`` flags, parse the command line, set up logging; return the arguments
    and the resolved :class:`LLMConfig` (the start of every LLM stage script)."""
    from syntriever.cli import setup_logging

    add_llm_args(parser, default_concurrency=default_concurrency, local_concurrency=local_concurrency,
                 local_model=local_model)
    args = parser.parse_args()
    setup_logging()
    return args, config_from_args(args)


def print_summary(out: Path | None) -> None:
    """Print the summary written beside an LLM stage's output (settings and model left out)."""
    if out is None:
        return
    summary = json.loads(out.with_suffix(".summary.json").read_text())
    print(json.dumps({k: v for k, v in summary.items() if k not in ("settings", "llm")}, indent=2))
    print(f"wrote {out}")


def default_backend(model: str | None, base_url: str | None = None) -> str:
    """``local`` for an embedded preset or a ``.gguf`` file (whatever the environment holds),
    else ``online`` when ``base_url`` (or ``OPENAI_BASE_URL``) or an API key is set, else ``local``."""
    if model is not None and (model in PRESETS or model.endswith(".gguf")):
        return "local"
    return "online" if base_url or os.environ.get("OPENAI_BASE_URL") or api_key() else "local"


def config_from_args(args: argparse.Namespace) -> LLMConfig:
    """Resolve the flags (and the environment) into an :class:`LLMConfig`."""
    base_url = args.llm_base_url or os.environ.get("OPENAI_BASE_URL")
    backend = args.llm_backend or default_backend(args.llm_model, base_url)
    local_model = getattr(args, "llm_local_model", DEFAULT_PRESET)
    model = args.llm_model or (local_model if backend == "local" else "gpt-4o")
    remote_default, local_default = getattr(args, "llm_concurrency_defaults", (16, 16))
    concurrency = args.llm_concurrency or (local_default if backend == "local" else remote_default)
    return LLMConfig(
        backend=backend, model=model, base_url=base_url, concurrency=concurrency,
        threads=args.llm_threads,
        max_retries=args.llm_max_retries, dry_run=args.dry_run, poll_interval=args.llm_poll_interval,
        batches_in_flight=args.llm_batches_in_flight,
        price_in=args.llm_price_in, price_out=args.llm_price_out,
    )


def run_requests(
    config: LLMConfig,
    requests_path: Path,
    results_path: Path,
    *,
    desc: str = "LLM",
    requests: list[dict[str, Any]] | None = None,
    done: set[str] | None = None,
) -> RunStats | None:
    """Run a request file with the configured backend; return stats (None for a dry run).

    ``requests`` are the file's requests and ``done`` the ids already in ``results_path`` when
    the caller holds them (each file is then read once)."""
    if requests is None:
        requests = load_requests(requests_path)
    if done is None:
        done = set(load_results(results_path))
    pending = [r for r in requests if r["custom_id"] not in done]
    prices = (config.price_in, config.price_out) if config.price_in is not None else None
    est = estimate(pending, None if config.is_local else config.model, config.backend == "batch", prices)
    logger.info("%s: %d of %d requests to run; estimate: %s", desc, len(pending), len(requests),
                est.summary())
    if config.dry_run:
        return None
    if not pending:
        return RunStats(total=len(requests), skipped=len(requests))
    if config.backend == "batch":
        from syntriever.llm.batch import run_batch

        return run_batch(requests_path, results_path, config=config, desc=desc,
                         requests=requests, done=set(done))
    online = dict(concurrency=config.concurrency, max_retries=config.max_retries, desc=desc,
                  pending=pending, total=len(requests))
    if config.is_local:
        with LocalServer(model=config.model, parallel=config.concurrency, threads=config.threads) as server:
            return run_online(requests_path, results_path, base_url=server.base_url, api_key=None, **online)
    return run_online(requests_path, results_path, base_url=config.base_url, api_key=api_key(),
                      model=config.model, **online)


@dataclass
class Sent:
    """What an LLM step sent in this run: results already on disk (resumed, or seeded from
    committed answers) are not counted, so a rebuild from committed results sends nothing."""

    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def __add__(self, other: Sent) -> Sent:
        return Sent(self.requests + other.requests, self.prompt_tokens + other.prompt_tokens,
                    self.completion_tokens + other.completion_tokens)


def execute_requests(
    config: LLMConfig, folder: Path, name: str, requests: list[dict[str, Any]], *, desc: str
) -> tuple[dict[str, dict[str, Any]] | None, Sent]:
    """One LLM step: write ``<folder>/<name>.requests.jsonl``, run it (resuming from
    ``<name>.results.jsonl``); return the results by ``custom_id`` (None for a dry run) and what
    this run sent."""
    requests_path, results_path = folder / f"{name}.requests.jsonl", folder / f"{name}.results.jsonl"
    if not requests:
        logger.warning("%s: no requests to send", desc)
        return {}, Sent()
    write_jsonl(requests_path, requests)
    before = set(load_results(results_path)) if results_path.is_file() else set()
    if run_requests(config, requests_path, results_path, desc=desc, requests=requests, done=before) is None:
        return None, Sent()
    results = load_results(results_path)
    new = [usage(results[r["custom_id"]]) for r in requests
           if r["custom_id"] in results and r["custom_id"] not in before]
    sent = Sent(len(new), sum(u[0] for u in new), sum(u[1] for u in new))
    missing = sum(r["custom_id"] not in results for r in requests)
    if missing:
        raise IncompleteRun(
            f"{desc}: {missing} of {len(requests)} requests have no result yet (failures are listed "
            f"in {errors_path(results_path)}); run the same command again to resume"
        )
    return results, sent


class IncompleteRun(UserError, RuntimeError):
    """Some requests of an LLM step still have no result; nothing downstream is written."""
