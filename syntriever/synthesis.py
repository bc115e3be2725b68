"""Stage 1 data: LLM-written passages and CoT queries, with self-verification.

For every training query (train split, relevance >= 1) the LLM writes a chain-of-thought expansion
``cot``, a relevant passage ``pos`` and a plausible-but-irrelevant passage ``neg``. With prompt
``v1`` (the paper) all three come from one request each. With ``v2`` the negative takes two steps:
``negq``, another query of the same kind and field on a different subject, then ``neg``, the
relevant-passage prompt on ``negq`` (see :mod:`syntriever.prompts`). Then the same LLM verifies
each synthetic passage ("is the passage relevant to the question? yes or no"). The paper verifies
only ``pos``; ``neg`` is verified too because its answer calibrates the log-probability judge.

Steps run query chunk by query chunk (``chunk_queries``) on the online and local runners, so a
long run on a small machine leaves complete records for its first chunks when it is stopped.

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
from syntriever.data import BeirDataset, training_queries
from syntriever.errors import UserError
from syntriever.jsonl import write_json, write_jsonl
from syntriever.llm.config import LLMConfig
from syntriever.llm.requests import (
    answer_text,
    chat_request,
    finish_reason,
    logprob_margin,
    result_line,
    top_logprobs,
    usage,
)
from syntriever.llm.runner import Sent, check_same_setup, execute_requests
from syntriever.meta_text import REMOVED, clean_record, removal_summary
from syntriever.names import limited_name
from syntriever.paths import generated_dir
from syntriever.profiles import PAPER, SYNTHESIS, check_profile, resolve
from syntriever.provenance import with_commands
from syntriever.synthesis_quality import CLOSE_QUERY_COVERAGE, coverage, quality_report

logger = logging.getLogger(__name__)

KINDS = ("cot", "pos", "neg")
FIELD = {"cot": "cot", "pos": "positive", "neg": "negative", "negq": "negative_query"}
YES, NO = ("yes",), ("no",)


@dataclass
class SynthesisSettings:
    """Generation and verification settings (paper defaults where the paper gives them)."""

    temperature: float = 0.7
    max_tokens_passage: int = SYNTHESIS[PAPER]["max_tokens_passage"]
    max_tokens_cot: int = SYNTHESIS[PAPER]["max_tokens_cot"]
    verify_mode: str = SYNTHESIS[PAPER]["verify_mode"]
    verify_threshold: float | None = None  # logprobs mode; None = calibrate on this run
    seed: int | None = 0
    prompt_version: str = prompts.PROMPT_VERSION
    chunk_queries: int | None = SYNTHESIS[PAPER]["chunk_queries"]  # online/local: queries per step run
    # False: generation only, verdicts "missing" (train with --no-verify); a later run adds them
    verify: bool = True
    # v2 only. False: no hard negatives from the LLM (records' "negative" is empty): stage 1 then
    # takes another training query's synthetic positive (train_stage1.py --negatives related)
    negatives: bool = True
    # drop the passages' sentences about the prompt (syntriever.meta_text); None: per prompt version
    drop_meta_sentences: bool | None = None

    @classmethod
    def for_profile(cls, profile: str, **flags: Any) -> SynthesisSettings:
        """The profile's settings (:data:`syntriever.profiles.SYNTHESIS`), flags given replacing them."""
        return cls(**resolve(SYNTHESIS[check_profile(profile)], flags))

    def __post_init__(self) -> None:
        if self.prompt_version not in prompts.PROMPT_VERSIONS:
            raise UserError(f"prompt version must be one of {prompts.PROMPT_VERSIONS}")
        if self.drop_meta_sentences is None:
            self.drop_meta_sentences = prompts.DROP_META_SENTENCES[self.prompt_version]
        if self.chunk_queries is not None and self.chunk_queries < 1:
            raise UserError(f"chunk_queries must be at least 1, got {self.chunk_queries}")


def run_dir(dataset: str, config: LLMConfig, prompt_version: str = prompts.PROMPT_VERSION) -> Path:
    """Folder of one synthesis run: dataset, prompt version and answering model."""
    return generated_dir(dataset) / f"synthesis-{prompt_version}-{config.model_tag()}"


def synthetic_path(
    dataset: str, config: LLMConfig, prompt_version: str = prompts.PROMPT_VERSION, *,
    limit: int | None = None, verified: bool = True,
) -> Path:
    """The stage-1 training input ``<dataset>_synthetic.jsonl`` of a run (of a run over the first
    ``limit`` training queries: ``<dataset>_synthetic.limit<N>.jsonl``; of a run without the
    verification: ``<dataset>_synthetic.unverified.jsonl``, so it never replaces a verified file)."""
    name = f"{dataset}_synthetic.jsonl" if verified else f"{dataset}_synthetic.unverified.jsonl"
    return run_dir(dataset, config, prompt_version) / limited_name(name, limit)


# Generation requests per prompt version: kind -> (prompt builder, token cap field). v2's ``neg``
# is not here: it is written from the ``negq`` answer (:func:`negative_requests`).
GENERATION = {
    "v1": {"cot": (prompts.cot, "cot"), "pos": (prompts.positive, "passage"),
           "neg": (prompts.negative, "passage")},
    "v2": {"cot": (prompts.cot, "cot"), "pos": (prompts.positive_v2, "passage"),
           "negq": (prompts.other_query, "query")},
}
OTHER_QUERY_MAX_TOKENS = 64
# v2, step 1: a new query close to the query (CLOSE_QUERY_COVERAGE of its content words; Qwen-Coder
# 1.5B often keeps the entities) is asked again with another seed, up to OTHER_QUERY_ATTEMPTS
# answers in all, and the least close answer is kept.
OTHER_QUERY_ATTEMPTS = 3


def _request(custom_id: str, messages: list[dict[str, str]], cap: str, config: LLMConfig,
             settings: SynthesisSettings) -> dict[str, Any]:
    max_tokens = {"cot": settings.max_tokens_cot, "passage": settings.max_tokens_passage,
                  "query": OTHER_QUERY_MAX_TOKENS}[cap]
    return chat_request(custom_id, messages, model=config.model, temperature=settings.temperature,
                        max_tokens=max_tokens, seed=settings.seed)


def generation_requests(
    queries: dict[str, str], config: LLMConfig, settings: SynthesisSettings
) -> list[dict[str, Any]]:
    """Three requests per query, ``<qid>:<kind>``: v1 ``cot``, ``pos``, ``neg``; v2 ``cot``,
    ``pos``, ``negq``."""
    kinds = {k: v for k, v in GENERATION[settings.prompt_version].items()
             if k != "negq" or settings.negatives}
    return [_request(f"{qid}:{kind}", build(query), cap, config, settings)
            for qid, query in queries.items() for kind, (build, cap) in kinds.items()]


_LABEL = re.compile(r"^\W*(?:new |different )?(?:query|question|claim)\s*:\s*", re.IGNORECASE)


def other_query_text(answer: str) -> str:
    """The query in a ``negq`` answer: its first non-empty line, without a "Query:" label, quotes
    or markdown emphasis."""
    line = next((ln for ln in answer.splitlines() if ln.strip()), "")
    return _LABEL.sub("", line.strip()).strip(" *\"'`")


def _negq_id(qid: str, attempt: int) -> str:
    return f"{qid}:negq" if attempt == 0 else f"{qid}:negq-{attempt}"


def best_other_query(qid: str, query: str, generated: dict[str, dict[str, Any]]) -> tuple[str, int]:
    """v2 step 1: the first ``negq`` answer that is not a variation of the query (coverage below
    :data:`CLOSE_QUERY_COVERAGE`), else the least close one; and how many answers there were."""
    answers = []
    for attempt in range(OTHER_QUERY_ATTEMPTS):
        result = generated.get(_negq_id(qid, attempt))
        if result is None:
            break
        answers.append(other_query_text(answer_text(result)))
    usable = [a for a in answers if a]
    for answer in usable:
        if coverage(query, answer) < CLOSE_QUERY_COVERAGE:
            return answer, len(answers)
    return min(usable, key=lambda a: coverage(query, a), default=""), len(answers)


def other_query_retries(
    queries: dict[str, str], generated: dict[str, dict[str, Any]], attempt: int, config: LLMConfig,
    settings: SynthesisSettings,
) -> list[dict[str, Any]]:
    """v2 step 1 again (``<qid>:negq-<attempt>``, another seed) for the queries whose answers so far
    are all variations of the query."""
    seed = None if settings.seed is None else settings.seed + attempt
    retry = SynthesisSettings(**{**asdict(settings), "seed": seed})
    out = []
    for qid, query in queries.items():
        answer, answers = best_other_query(qid, query, generated)
        if answers == attempt and (not answer or coverage(query, answer) >= CLOSE_QUERY_COVERAGE):
            out.append(_request(_negq_id(qid, attempt), prompts.other_query(query), "query", config, retry))
    return out


def negative_requests(
    queries: dict[str, str], generated: dict[str, dict[str, Any]], config: LLMConfig,
    settings: SynthesisSettings,
) -> list[dict[str, Any]]:
    """v2 step 2: ``<qid>:neg``, the relevant-passage prompt on the query's best ``negq`` answer."""
    out = []
    for qid, query in queries.items():
        other = best_other_query(qid, query, generated)[0]
        if other:
            out.append(_request(f"{qid}:neg", prompts.positive_v2(other), "passage", config, settings))
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
    if settings.verify_mode == "logprobs" and threshold is None and settings.verify:
        pos = [m for cid, m in margins.items() if cid.endswith(":verify-pos") and m is not None]
        neg = [m for cid, m in margins.items() if cid.endswith(":verify-neg") and m is not None]
        threshold = youden_threshold(pos, neg)
    records, counts = [], {"yes": 0, "no": 0, "unparseable": 0, "missing": 0}
    text_counts = {"yes": 0, "no": 0, "unparseable": 0}
    truncated = 0
    provenance = config.provenance()
    kinds = [*GENERATION[settings.prompt_version], *(("neg",) if settings.prompt_version != "v1" else ())]
    if not settings.negatives:
        kinds = [k for k in kinds if k not in ("negq", "neg")]
    for qid, query in queries.items():
        texts, finish = {}, {}
        for kind in kinds:
            result = generated.get(f"{qid}:{kind}")
            texts[kind] = answer_text(result).strip() if result else ""
            if result:
                finish[FIELD[kind]] = finish_reason(result)
            truncated += bool(result) and finish_reason(result) == "length"
        texts.setdefault("neg", "")
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
        record = {
            "query_id": qid, "query": query, "cot": texts["cot"], "positive": texts["pos"],
            "negative": texts["neg"], "verification_answer": answer, "verification_margin": margin,
            "negative_margin": margins.get(f"{qid}:verify-neg"), "verdict": verdict,
            "verify_mode": settings.verify_mode, "model": config.model,
            "prompt_version": settings.prompt_version, "finish_reasons": finish,
        }
        if "negq" in texts:
            record["negative_query"], record["negative_query_answers"] = best_other_query(
                qid, query, generated)
        if settings.drop_meta_sentences:
            clean_record(record)
        records.append(record)
    tokens_in = sum(usage(r)[0] for r in [*generated.values(), *verified.values()])
    tokens_out = sum(usage(r)[1] for r in [*generated.values(), *verified.values()])
    empty = {k: sum(not r[FIELD[k]] for r in records) for k in KINDS}
    judged = counts["yes"] + counts["no"]
    summary = {
        "queries": len(queries), "verdicts": counts, "text_verdicts": text_counts,
        "relabelled_share": counts["no"] / judged if judged else None,
        "verify_mode": settings.verify_mode, "verify_threshold": threshold,
        "empty_generations": empty, "truncated_generations": truncated, REMOVED: removal_summary(records),
        "prompt_tokens": tokens_in, "completion_tokens": tokens_out,
        "settings": asdict(settings), "llm": provenance, "prompt_version": settings.prompt_version,
        "quality": quality_report(records),
    }
    return records, summary


def verification_estimate(
    queries: dict[str, str], config: LLMConfig, settings: SynthesisSettings
) -> str:
    """What the verification step would cost, before the passages it checks exist: every
    passage assumed as long as its cap (``max_tokens_passage``), so an upper bound."""

    filler = " ".join(["word"] * settings.max_tokens_passage)
    body = {"choices": [{"message": {"content": filler}}]}
    ids = [f"{qid}:{kind}" for qid in queries for kind in ("pos", "neg")]
    generated = {cid: result_line(cid, body) for cid in ids}
    requests = verification_requests(queries, generated, config)
    est = config.estimate(requests)
    cap = settings.max_tokens_passage
    return f"{len(requests)} requests, passages at their {cap}-token cap; {est.summary()}"


def run_synthesis(
    ds: BeirDataset, config: LLMConfig, settings: SynthesisSettings, limit: int | None = None
) -> Path | None:
    """Generate, verify and write ``<dataset>_synthetic.jsonl`` (with ``limit``, the run's own
    ``<dataset>_synthetic.limit<N>.jsonl``); resumes from earlier results."""
    folder = run_dir(ds.name, config, settings.prompt_version)
    check_same_setup(folder.glob(f"{ds.name}_synthetic*.summary.json"), asdict(settings),
                     ("temperature", "max_tokens_passage", "max_tokens_cot", "verify_mode", "seed",
                      "prompt_version"))
    queries = training_queries(ds, limit)
    chunk = settings.chunk_queries if settings.chunk_queries and config.backend != "batch" else len(queries)
    qids = list(queries)
    generated: dict[str, dict[str, Any]] = {}
    verified: dict[str, dict[str, Any]] = {}
    sent = Sent()
    for start in range(0, len(qids), chunk):
        part = {q: queries[q] for q in qids[start:start + chunk]}
        where = f" (queries {start + 1}-{start + len(part)} of {len(qids)})" if chunk < len(qids) else ""
        step = _synthesise(part, folder, config, settings, where)
        if step is None:
            return None
        generated.update(step[0])
        verified.update(step[1])
        sent += step[2]
    records, summary = build_records(queries, generated, verified, config, settings)
    out = synthetic_path(ds.name, config, settings.prompt_version, limit=limit, verified=settings.verify)
    write_jsonl(out, records)
    summary["sent_this_run"] = asdict(sent)
    write_json(out.with_suffix(".summary.json"), with_commands(summary))
    logger.info("wrote %d records to %s", len(records), out)
    logger.info("quality: %s", summary["quality"])
    return out


def _synthesise(
    queries: dict[str, str], folder: Path, config: LLMConfig, settings: SynthesisSettings, where: str
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]], Sent] | None:
    """Every LLM step for ``queries``: generation, v2's second negative step, verification.
    Returns the results by ``custom_id`` and what was sent (None for a dry run)."""
    generated, sent = execute_requests(
        config, folder, "generation", generation_requests(queries, config, settings),
        desc=f"synthesis{where}",
    )
    if generated is None:  # dry run
        logger.info("verification (after the generation): %s",
                    verification_estimate(queries, config, settings))
        return None
    if settings.prompt_version != "v1" and settings.negatives:
        for attempt in range(1, OTHER_QUERY_ATTEMPTS):
            retry = other_query_retries(queries, generated, attempt, config, settings)
            if not retry:
                break
            answers, sent_retry = execute_requests(config, folder, f"negq-retry{attempt}", retry,
                                                   desc=f"new queries, attempt {attempt + 1}{where}")
            if answers is None:
                return None
            generated = {**generated, **answers}
            sent += sent_retry
        negatives, sent_neg = execute_requests(
            config, folder, "negatives", negative_requests(queries, generated, config, settings),
            desc=f"negatives{where}",
        )
        if negatives is None:
            return None
        generated = {**generated, **negatives}
        sent += sent_neg
    if not settings.verify:
        return generated, {}, sent
    verified, sent_verify = execute_requests(
        config, folder, "verification", verification_requests(queries, generated, config),
        desc=f"verification{where}",
    )
    if verified is None:
        return None
    return generated, verified, sent + sent_verify
