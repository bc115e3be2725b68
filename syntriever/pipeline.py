"""The whole method as a chain of stage scripts, each re-run only when something it depends on
changed.

Every step is a command line (one of the stage scripts) with upstream steps and output paths.
Its *fingerprint* hashes the command, the run ids of its upstream steps and, for the data step,
the dataset files. A step's *run id* names the outputs it left: a new one each time the step
runs (for the data step, its fingerprint, which already hashes the files). After a step succeeds
a small manifest (command, fingerprint, run id, wall time, LLM tokens sent and cost) is written
to ``output/pipeline/<dataset>/<step>.json``; a step whose outputs exist and whose manifest holds
the same fingerprint is skipped. Changing one flag therefore re-runs that step and what depends
on it, nothing else; a step re-run because its outputs were deleted also re-runs everything
downstream of it. LLM steps resume from the committed request results, so on a fresh clone they
rebuild their outputs without new LLM calls (and report 0 tokens sent).
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

from syntriever.errors import UserError
from syntriever.jsonl import read_json, sha256_file, write_json
from syntriever.llm.config import LLMConfig
from syntriever.llm.cost import usd
from syntriever.paths import ROOT, dataset_dir, output_root

logger = logging.getLogger(__name__)


@dataclass
class Step:
    """One stage script run: ``args`` relative to the repository root."""

    name: str
    args: list[str]
    outputs: list[Path]
    after: list[str] = field(default_factory=list)
    llm: LLMConfig | None = None  # an LLM step: its model prices the tokens its summary says it sent
    always: bool = False  # cheap steps that gather results (the table)

    @property
    def summary(self) -> Path | None:
        """An LLM step's summary JSON, beside its first output."""
        return self.outputs[0].with_suffix(".summary.json") if self.llm else None


class StepFailed(UserError, subprocess.CalledProcessError):
    """A step's script exited non-zero (its own one-line error is printed above)."""

    def __init__(self, step: Step, returncode: int) -> None:
        subprocess.CalledProcessError.__init__(self, returncode, [sys.executable, *step.args])
        self.step = step

    def __str__(self) -> str:
        return (f"step {self.step.name!r} ({' '.join(self.step.args)}) failed with exit code "
                f"{self.returncode}; its error is printed above, and the steps before it are kept")


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


def _hash(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:20]


class Pipeline:
    """Run :class:`Step`s in order, skipping those that are up to date."""

    def __init__(self, dataset: str, steps: list[Step]) -> None:
        self.dataset = dataset
        self.steps = steps
        self.manifest_dir = output_root() / "pipeline" / dataset
        self.run_ids: dict[str, str] = {}

    def fingerprint(self, step: Step) -> str:
        parts: dict[str, Any] = {"args": step.args, "after": {n: self.run_ids[n] for n in step.after}}
        if step.name == "data":
            if not dataset_dir(self.dataset).exists():
                return ""  # known only once the data are there
            parts["dataset"] = dataset_digest(self.dataset)
        return _hash(parts)

    def manifest_path(self, step: Step) -> Path:
        return self.manifest_dir / f"{step.name.replace(' ', '-')}.json"

    def manifest(self, step: Step) -> dict[str, Any] | None:
        path = self.manifest_path(step)
        if not path.is_file():
            return None
        try:
            manifest = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            logger.warning("%s: unreadable manifest (%s); step %r counts as not run", path, err, step.name)
            return None
        return manifest if isinstance(manifest, dict) else None

    def up_to_date(self, step: Step, fingerprint: str) -> bool:
        manifest = self.manifest(step)
        return (
            not step.always
            and manifest is not None
            and manifest.get("fingerprint") == fingerprint
            and all(p.exists() for p in step.outputs)
        )

    def _llm_usage(self, step: Step) -> tuple[int, int, float | None]:
        """Tokens the step's LLM run sent (not those resumed or seeded from earlier results)."""
        if step.llm is None or step.summary is None or not step.summary.is_file():
            return 0, 0, None
        fix = f"run the step again: python {' '.join(step.args)} (LLM answers are reused)"
        sent = read_json(step.summary, fix).get("sent_this_run") or {}
        tokens_in, tokens_out = int(sent.get("prompt_tokens", 0)), int(sent.get("completion_tokens", 0))
        price = step.llm.prices
        cost = usd(tokens_in, tokens_out, price, step.llm.backend == "batch") if price else None
        return tokens_in, tokens_out, cost

    def run(self, plan_only: bool = False) -> list[StepReport]:
        """Run the steps that are not up to date; with ``plan_only``, run nothing and report
        which steps would run. The plan is exact, except that before the dataset is there its
        digest is unknown, so every later step is listed."""
        reports = []
        for step in self.steps:
            fingerprint = self.fingerprint(step)
            if self.up_to_date(step, fingerprint):
                manifest = self.manifest(step) or {}
                self.run_ids[step.name] = manifest.get("run_id", fingerprint)
                reports.append(StepReport(step.name, "up to date"))
                continue
            if plan_only:
                self.run_ids[step.name] = f"planned-{fingerprint}"
                logger.info("would run %s: python %s", step.name, " ".join(step.args))
                reports.append(StepReport(step.name, "would run"))
                continue
            logger.info("=== %s: python %s", step.name, " ".join(step.args))
            start = time.perf_counter()
            done = subprocess.run([sys.executable, *step.args], cwd=ROOT, check=False)
            if done.returncode:
                raise StepFailed(step, done.returncode)
            seconds = time.perf_counter() - start
            finished = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            if step.name == "data":  # its fingerprint hashes the files it left
                fingerprint = run_id = self.fingerprint(step)
            else:
                run_id = _hash([fingerprint, time.time_ns()])
            self.run_ids[step.name] = run_id
            tokens_in, tokens_out, cost = self._llm_usage(step)
            report = StepReport(step.name, "ran", round(seconds, 1), tokens_in, tokens_out, cost)
            write_json(
                self.manifest_path(step),
                {
                    "step": step.name,
                    "args": step.args,
                    "fingerprint": fingerprint,
                    "run_id": run_id,
                    "after": step.after,
                    "outputs": [str(p) for p in step.outputs],
                    "seconds": report.seconds,
                    "llm_prompt_tokens_sent": tokens_in,
                    "llm_completion_tokens_sent": tokens_out,
                    "llm_cost_usd": cost,
                    "finished": finished,
                },
            )
            reports.append(report)
        return reports


def format_reports(reports: list[StepReport]) -> str:
    """A plain-text table of what each step did."""
    lines = [f"{'step':24s} {'status':11s} {'seconds':>8s} {'LLM tokens sent in/out':>22s} {'cost':>9s}"]
    for r in reports:
        tokens = f"{r.prompt_tokens:,}/{r.completion_tokens:,}" if r.prompt_tokens else "-"
        cost = f"${r.cost_usd:,.2f}" if r.cost_usd is not None else "-"
        seconds = f"{r.seconds:.0f}" if r.status == "ran" else "-"
        lines.append(f"{r.name:24s} {r.status:11s} {seconds:>8s} {tokens:>22s} {cost:>9s}")
    total = sum(r.seconds for r in reports)
    lines.append(f"{'total':24s} {'':11s} {total:>8.0f}")
    return "\n".join(lines)

