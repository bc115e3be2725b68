"""The whole method as a chain of stage scripts, each re-run only when something it depends on
changed.

Every step is a command line (one of the stage scripts) with upstream steps and output paths.
Its *fingerprint* hashes the command, the fingerprints of its upstream steps and, for the data
step, the dataset files. After a step succeeds a small manifest (command, fingerprint, wall
time, LLM tokens and cost) is written to ``output/pipeline/<dataset>/<step>.json``; a step whose
outputs exist and whose manifest holds the same fingerprint is skipped. Changing one flag
therefore re-runs that step and what depends on it, nothing else. LLM steps resume from the
committed request results, so on a fresh clone they rebuild their outputs without new LLM calls.
"""

from __future__ import annotations

import hashlib
import json
import logging
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from syntriever.jsonl import sha256_file, write_json
from syntriever.llm.cost import BATCH_DISCOUNT, PRICES_PER_M
from syntriever.paths import ROOT, dataset_dir, output_root

logger = logging.getLogger(__name__)


@dataclass
class Step:
    """One stage script run: ``args`` relative to the repository root."""

    name: str
    args: list[str]
    outputs: list[Path]
    after: list[str] = field(default_factory=list)
    summary: Path | None = None  # an LLM step's summary JSON (tokens) to report
    always: bool = False  # cheap steps that gather results (the table)


@dataclass
class StepReport:
    name: str
    status: str
    seconds: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float | None = None


def dataset_digest(dataset: str) -> str:
    """Hash of a dataset's files (corpus, queries, qrels)."""
    folder = dataset_dir(dataset)
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(folder)).encode() + sha256_file(path).encode())
    return digest.hexdigest()


class Pipeline:
    """Run :class:`Step`s in order, skipping those that are up to date."""

    def __init__(
        self, dataset: str, steps: list[Step], *, llm_model: str | None = None, llm_backend: str | None = None
    ) -> None:
        self.dataset = dataset
        self.steps = steps
        self.llm_model = llm_model
        self.llm_backend = llm_backend
        self.manifest_dir = output_root() / "pipeline" / dataset
        self.fingerprints: dict[str, str] = {}

    def fingerprint(self, step: Step) -> str:
        parts: dict[str, Any] = {"args": step.args, "after": {n: self.fingerprints[n] for n in step.after}}
        if step.name == "data" and dataset_dir(self.dataset).exists():
            parts["dataset"] = dataset_digest(self.dataset)
        return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:20]

    def manifest(self, step: Step) -> dict[str, Any] | None:
        path = self.manifest_dir / f"{step.name.replace(' ', '-')}.json"
        return json.loads(path.read_text()) if path.is_file() else None

    def up_to_date(self, step: Step, fingerprint: str) -> bool:
        manifest = self.manifest(step)
        return (
            not step.always
            and manifest is not None
            and manifest.get("fingerprint") == fingerprint
            and all(p.exists() for p in step.outputs)
        )

    def _llm_usage(self, step: Step) -> tuple[int, int, float | None]:
        if step.summary is None or not step.summary.is_file():
            return 0, 0, None
        summary = json.loads(step.summary.read_text())
        tokens_in, tokens_out = int(summary.get("prompt_tokens", 0)), int(summary.get("completion_tokens", 0))
        price = PRICES_PER_M.get(self.llm_model or "")
        if price is None:
            return tokens_in, tokens_out, None
        cost = (tokens_in * price[0] + tokens_out * price[1]) / 1e6
        return tokens_in, tokens_out, cost * (BATCH_DISCOUNT if self.llm_backend == "batch" else 1.0)

    def run(self, plan_only: bool = False) -> list[StepReport]:
        """Run the steps that are not up to date; with ``plan_only``, run nothing and report
        which steps would run (fingerprints depend on commands, not on outputs, so the plan is
        exact, except that a missing dataset makes everything after the data step run)."""
        reports = []
        for step in self.steps:
            fingerprint = self.fingerprint(step)
            if step.name == "data" and not dataset_dir(self.dataset).exists():
                fingerprint = ""  # known only once the data are there
            if self.up_to_date(step, fingerprint):
                self.fingerprints[step.name] = fingerprint
                reports.append(StepReport(step.name, "up to date"))
                continue
            if plan_only:
                self.fingerprints[step.name] = fingerprint
                print(f"would run {step.name}: python {' '.join(step.args)}", flush=True)
                reports.append(StepReport(step.name, "would run"))
                continue
            print(f"\n=== {step.name}: python {' '.join(step.args)}", flush=True)
            start = time.perf_counter()
            subprocess.run([sys.executable, *step.args], cwd=ROOT, check=True)
            seconds = time.perf_counter() - start
            if step.name == "data":
                fingerprint = self.fingerprint(step)
            self.fingerprints[step.name] = fingerprint
            tokens_in, tokens_out, cost = self._llm_usage(step)
            report = StepReport(step.name, "ran", round(seconds, 1), tokens_in, tokens_out, cost)
            write_json(
                self.manifest_dir / f"{step.name.replace(' ', '-')}.json",
                {
                    "step": step.name,
                    "args": step.args,
                    "fingerprint": fingerprint,
                    "after": step.after,
                    "outputs": [str(p) for p in step.outputs],
                    "seconds": report.seconds,
                    "llm_prompt_tokens": tokens_in,
                    "llm_completion_tokens": tokens_out,
                    "llm_cost_usd": cost,
                    "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                },
            )
            reports.append(report)
        return reports


def format_reports(reports: list[StepReport]) -> str:
    """A plain-text table of what each step did."""
    lines = [f"{'step':24s} {'status':11s} {'seconds':>8s} {'LLM tokens in/out':>20s} {'cost':>9s}"]
    for r in reports:
        tokens = f"{r.prompt_tokens:,}/{r.completion_tokens:,}" if r.prompt_tokens else "-"
        cost = f"${r.cost_usd:,.2f}" if r.cost_usd is not None else "-"
        seconds = f"{r.seconds:.0f}" if r.status == "ran" else "-"
        lines.append(f"{r.name:24s} {r.status:11s} {seconds:>8s} {tokens:>20s} {cost:>9s}")
    total = sum(r.seconds for r in reports)
    lines.append(f"{'total':24s} {'':11s} {total:>8.0f}")
    return "\n".join(lines)

