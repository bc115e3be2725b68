"""Stage 1 data: LLM-written passages and CoT queries, with self-verification.

For every training query (train split, relevance >= 1) three generation requests are sent: a
chain-of-thought expansion ``cot``, a relevant passage ``pos`` and a plausible-but-irrelevant
passage ``neg``. Then the same LLM verifies each synthetic passage ("is the passage relevant to
the question? yes or no"). The paper verifies only ``pos``; ``neg`` is verified too because its
answer calibrates the log-probability judge.

Two verification modes decide the verdict on ``pos``:
- ``text``: the answer word, as in the paper; anything but yes/no is *unparseable* and counted.
- ``logprobs``: the margin log P(yes) - log P(no) of the first answer token, above a threshold
  calibrated on this run (Youden's J between the margins of the positives and of the queries'
  own synthetic negatives) unless one is given. Small local models say "Yes" to nearly anything
  as text, which is why this is the offline default.
A ``no`` relabels ``pos`` as a second hard negative at training time; an unparseable answer is
neither: the synthetic positive is left out of that example's loss.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from syntriever import prompts
from syntriever.data import BeirDataset
from syntriever.jsonl import write_json, write_jsonl
from syntriever.llm.config import LLMConfig, execute_requests
from syntriever.llm.requests import (
    answer_text,
    chat_request,
    finish_reason,
    logprob_margin,
    top_logprobs,
    usage,
)
from syntriever.paths import generated_dir
from syntriever.provenance import with_commands

logger = logging.getLogger(__name__)

KINDS = ("cot", "pos", "neg")
YES, NO = ("yes",), ("no",)


@dataclass
class SynthesisSettings:
    """Generation and verification settings (paper defaults where the paper gives them)."""

    temperature: float = 0.7
    max_tokens_passage: int = 512
    max_tokens_cot: int = 512
    verify_mode: str = "text"
    verify_threshold: float | None = None  # logprobs mode; None = calibrate on this run
    seed: int | None = 0


def run_dir(dataset: str, config: LLMConfig) -> Path:
    """Folder of one synthesis run: dataset, prompt version and answering model."""
    return generated_dir(dataset) / f"synthesis-{prompts.PROMPT_VERSION}-{config.model_tag()}"


def synthetic_path(dataset: str, config: LLMConfig) -> Path:
    """The stage-1 training input ``<dataset>_synthetic.jsonl`` of a run."""
    return run_dir(dataset, config) / f"{dataset}_synthetic.jsonl"


def training_queries(ds: BeirDataset, limit: int | None = None) -> dict[str, str]:
    """Train-split queries with at least one relevant passage, in file order (first ``limit``)."""
    qids = [qid for qid, docs in ds.qrels.items() if any(s >= 1 for s in docs.values())]
    if limit is not None:
        qids = qids[:limit]
    return {qid: ds.queries[qid] for qid in qids}


def generation_requests(
    queries: dict[str, str], config: LLMConfig, settings: SynthesisSettings
) -> list[dict[str, Any]]:
    """Three requests per query: ``<qid>:cot``, ``<qid>:pos``, ``<qid>:neg``."""
    build = {"cot": prompts.cot, "pos": prompts.positive, "neg": prompts.negative}
    out = []
    for qid, query in queries.items():
        for kind in KINDS:
            max_tokens = settings.max_tokens_cot if kind == "cot" else settings.max_tokens_passage
            out.append(
                chat_request(
                    f"{qid}:{kind}", build[kind](query), model=config.model,
                    temperature=settings.temperature, max_tokens=max_tokens, seed=settings.seed,
                )
            )
    return out


def verification_requests(
    queries: dict[str, str], generated: dict[str, dict[str, Any]], config: LLMConfig
) -> list[dict[str, Any]]:
    """Verify each generated passage (greedy, first tokens' log-probabilities requested)."""
    out = []
    for qid, query in queries.items():
        for kind in ("pos", "neg"):
            result = generated.get(f"{qid}:{kind}")
            if result is None or not answer_text(result).strip():
                continue
            out.append(
                chat_request(
                    f"{qid}:verify-{kind}", prompts.verify(query, answer_text(result).strip()),
                    model=config.model, temperature=0.0, max_tokens=3, logprobs=True, top_logprobs=10,
                )
            )
    return out


_WORD = re.compile(r"[a-z]+")


def parse_yes_no(text: str) -> str:
    """``yes`` or ``no`` when the answer starts with that word (markdown and case ignored), else
    ``unparseable``. Nothing is guessed."""
    match = _WORD.search(text.lower())
    word = match.group(0) if match else ""
    return word if word in ("yes", "no") else "unparseable"


def yes_no_margin(result: dict[str, Any]) -> float | None:
    """log P(yes) - log P(no) at the first answer token; None when neither is among the top
    alternatives. When only one is listed the other is bounded by the lowest listed logprob."""
    return logprob_margin(top_logprobs(result, 0), YES, NO)


def youden_threshold(positive: list[float], negative: list[float]) -> float:
    """The cut maximising TPR - FPR when ``positive`` margins should pass and ``negative`` fail."""
    if not positive or not negative:
        raise ValueError("calibration needs margins of both synthetic positives and negatives")
    candidates = sorted(set(positive) | set(negative))
    cuts = [candidates[0] - 1.0] + [
        (a + b) / 2 for a, b in zip(candidates, candidates[1:], strict=False)
    ]
    best, best_j = cuts[0], -math.inf
    for cut in cuts:
        tpr = sum(m > cut for m in positive) / len(positive)
        fpr = sum(m > cut for m in negative) / len(negative)
        if tpr - fpr > best_j:
            best, best_j = cut, tpr - fpr
    return best


def build_records(
    queries: dict[str, str],
    generated: dict[str, dict[str, Any]],
    verified: dict[str, dict[str, Any]],
    config: LLMConfig,
    settings: SynthesisSettings,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Join generations and verifications into one record per query, plus a summary."""
    margins = {cid: yes_no_margin(r) for cid, r in verified.items()}
    threshold = settings.verify_threshold
    if settings.verify_mode == "logprobs" and threshold is None:
        pos = [m for cid, m in margins.items() if cid.endswith(":verify-pos") and m is not None]
        neg = [m for cid, m in margins.items() if cid.endswith(":verify-neg") and m is not None]
        threshold = youden_threshold(pos, neg)
    records, counts = [], {"yes": 0, "no": 0, "unparseable": 0, "missing": 0}
    text_counts = {"yes": 0, "no": 0, "unparseable": 0}
    truncated = 0
    provenance = config.provenance()
    for qid, query in queries.items():
        texts = {}
        for kind in KINDS:
            result = generated.get(f"{qid}:{kind}")
            texts[kind] = answer_text(result).strip() if result else ""
            truncated += bool(result) and finish_reason(result) == "length"
        check = verified.get(f"{qid}:verify-pos")
        answer = answer_text(check).strip() if check else ""
        text_verdict = parse_yes_no(answer) if check else "missing"
        margin = margins.get(f"{qid}:verify-pos")
        if check is None:
            verdict = "missing"
        elif settings.verify_mode == "text":
            verdict = text_verdict
        else:
            verdict = "unparseable" if margin is None else ("yes" if margin > threshold else "no")
        counts[verdict] += 1
        if text_verdict in text_counts:
            text_counts[text_verdict] += 1
        records.append({
            "query_id": qid, "query": query, "cot": texts["cot"], "positive": texts["pos"],
            "negative": texts["neg"], "verification_answer": answer, "verification_margin": margin,
            "negative_margin": margins.get(f"{qid}:verify-neg"), "verdict": verdict,
            "verify_mode": settings.verify_mode, "model": config.model,
            "prompt_version": prompts.PROMPT_VERSION,
        })
    tokens_in = sum(usage(r)[0] for r in [*generated.values(), *verified.values()])
    tokens_out = sum(usage(r)[1] for r in [*generated.values(), *verified.values()])
    empty = {k: sum(not r[{"cot": "cot", "pos": "positive", "neg": "negative"}[k]] for r in records)
             for k in KINDS}
    judged = counts["yes"] + counts["no"]
    summary = {
        "queries": len(queries), "verdicts": counts, "text_verdicts": text_counts,
        "relabelled_share": counts["no"] / judged if judged else None,
        "verify_mode": settings.verify_mode, "verify_threshold": threshold,
        "empty_generations": empty, "truncated_generations": truncated,
        "prompt_tokens": tokens_in, "completion_tokens": tokens_out,
        "settings": asdict(settings), "llm": provenance, "prompt_version": prompts.PROMPT_VERSION,
    }
    return records, summary


def run_synthesis(
    ds: BeirDataset, config: LLMConfig, settings: SynthesisSettings, limit: int | None = None
) -> Path | None:
    """Generate, verify and write ``<dataset>_synthetic.jsonl``; resumes from earlier results."""
    folder = run_dir(ds.name, config)
    queries = training_queries(ds, limit)
    generated, sent = execute_requests(
        config, folder, "generation", generation_requests(queries, config, settings), desc="synthesis"
    )
    if generated is None:
        return None
    verified, sent_verify = execute_requests(
        config, folder, "verification", verification_requests(queries, generated, config),
        desc="verification",
    )
    records, summary = build_records(queries, generated, verified or {}, config, settings)
    out = synthetic_path(ds.name, config)
    write_jsonl(out, records)
    summary["sent_this_run"] = asdict(sent + sent_verify)
    write_json(out.with_suffix(".summary.json"), with_commands(summary))
    logger.info("wrote %d records to %s", len(records), out)
    return out
