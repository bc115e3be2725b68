"""The stage-2 judge: LLM preferences between the stage-1 model's top passages.

:func:`run_comparisons` asks the LLM, for the top ``k`` (5) passages of each training query in
the retrieval file (:func:`syntriever.retrieval.retrieve_training_queries`), which of two
passages is more relevant, for all C(k, 2) pairs (or the first ``pairs`` in rank order). Each
decided pair is a triple (query, winner, loser) in ``<dataset>_preferences.jsonl``, the input of
stage 2 (:mod:`syntriever.stage2`). Reading an answer (parse, score, verdict, compact form) is
:mod:`syntriever.verdicts`.

Two judge modes:

- ``text`` (the paper): one request per pair, the higher-ranked passage as #1; the answer must
  name "Passage #1" or "Passage #2" (a bare "1"/"#1" is accepted). Anything else is
  *unparseable*: counted and dropped, never read as #2 (the authors' code counts any answer
  without "#1" as a win for passage 2).
- ``logprobs`` (offline default): both orders are asked, greedy, with the top log-probabilities
  of the answer tokens. Each answer is scored by log P("1") - log P("2") at the first generated
  token that is the digit (the model may write "Passage #1"). With ``ab`` the score with the
  higher-ranked passage A as #1 and ``ba`` with B as #1, the order-averaged preference for A is
  ``d = (ab - ba) / 2``: A wins when d > 0, B when d < 0; a tie or a missing score is
  unparseable. Averaging the two orders cancels the judge's position bias, which the summary
  measures (share of pairs whose two text answers pick the same position).

Requests are written so that consecutive prompts share their prefix (same query, same passage
#1): llama.cpp's per-slot prompt cache then reuses it (fully with one server slot; with several,
concurrent requests of a group land on different slots, so a low ``--llm-concurrency`` reuses
more). ``max_chars`` truncates passages in the judge's prompt only (the triples keep the full
texts); the embedded profile's (:data:`syntriever.profiles.JUDGE`) bounds prompt processing on
CPU and keeps two passages within the server's context per slot.

The judge's answers are kept in compact form (:func:`syntriever.verdicts.compact_answer`) in
``<tag>.answers.jsonl``, committed, and seed the results of a fresh checkout, so nothing judged
is sent again.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from syntriever import prompts
from syntriever.data import check_limit, load_dataset
from syntriever.errors import UserError
from syntriever.jsonl import DataError, JsonlAppender, read_json, read_jsonl_numbered, write_json, write_jsonl
from syntriever.llm.config import LLMConfig
from syntriever.llm.requests import chat_request, load_results, usage
from syntriever.llm.runner import Sent, execute_requests
from syntriever.names import limited_name
from syntriever.paths import file_safe, generated_dir, portable
from syntriever.profiles import JUDGE, PAPER, check_profile, resolve
from syntriever.provenance import with_commands
from syntriever.retrieval import load_retrieval, retrieval_path
from syntriever.teachers import JUDGE as JUDGE_TEACHER
from syntriever.teachers import Pair, teach
from syntriever.verdicts import compact_answer, judge_logprobs, judge_text, order_stats

logger = logging.getLogger(__name__)

JUDGE_MODES = ("text", "logprobs")


@dataclass
class ComparisonSettings:
    """How passages are compared (paper: K = 5, all 10 pairs, text answers, temperature 0)."""

    k: int = JUDGE[PAPER]["k"]
    pairs: int | None = None  # first N pairs in rank order; None = all C(k, 2)
    judge_mode: str = JUDGE[PAPER]["judge_mode"]
    max_chars: int | None = JUDGE[PAPER]["max_chars"]  # passage truncation in the judge's prompt only
    max_tokens: int | None = None  # None: 8 for text, 6 for logprobs
    agreeing_only: bool = False  # logprobs: drop pairs whose two orders prefer different passages

    @classmethod
    def for_profile(cls, profile: str, **flags: Any) -> ComparisonSettings:
        """The profile's settings (:data:`syntriever.profiles.JUDGE`), flags given replacing them."""
        return cls(**resolve(JUDGE[check_profile(profile)], flags))

    def __post_init__(self) -> None:
        if self.judge_mode not in JUDGE_MODES:
            raise UserError(f"judge_mode must be one of {JUDGE_MODES}, not {self.judge_mode!r}")
        if self.k < 2:
            raise UserError("--compare-top-k must be at least 2 to form a pair")
        if self.pairs is not None and self.pairs < 1:
            raise UserError(f"--pairs must be at least 1, got {self.pairs}")
        if self.agreeing_only and self.judge_mode != "logprobs":
            raise UserError("--agreeing-only needs both orders: use --judge-mode logprobs")
        if self.max_tokens is None:
            self.max_tokens = 8 if self.judge_mode == "text" else 6

    @property
    def both_orders(self) -> bool:
        return self.judge_mode == "logprobs"

    def tag(self) -> str:
        """Request-file name: the mode and the truncation, which change the prompts and answers."""
        return f"comparison-{self.judge_mode}" + (f"-chars{self.max_chars}" if self.max_chars else "")


def comparison_dir(dataset: str, config: LLMConfig, model_name: str) -> Path:
    """``generated/<dataset>/comparison-<prompt version>-<llm tag>-<stage-1 model>``."""
    return generated_dir(dataset) / (
        f"comparison-{prompts.COMPARE_VERSION}-{config.model_tag()}-{file_safe(model_name)}"
    )


def preferences_path(dataset: str, config: LLMConfig, model_name: str, limit: int | None = None) -> Path:
    """The stage-2 training input ``<dataset>_preferences.jsonl`` of a comparison run (of a run
    over the first ``limit`` queries: ``<dataset>_preferences.limit<N>.jsonl``)."""
    return comparison_dir(dataset, config, model_name) / limited_name(f"{dataset}_preferences.jsonl", limit)


def candidate_pairs(k: int, limit: int | None = None) -> list[tuple[int, int]]:
    """Rank pairs ``(i, j)``, ``i < j``, of the top ``k`` in rank order; the first ``limit``."""
    pairs = list(itertools.combinations(range(k), 2))
    return pairs if limit is None else pairs[:limit]


def pair_id(query_id: str, doc_a: str, doc_b: str, order: str) -> str:
    """``<qid>:<docA>|<docB>:ab`` (A, the higher-ranked passage, as #1) or ``...:ba``."""
    return f"{query_id}:{doc_a}|{doc_b}:{order}"


def truncate(text: str, max_chars: int | None) -> str:
    """``text`` cut to about ``max_chars`` characters at a word boundary (marked with "...")."""
    if max_chars is None or len(text) <= max_chars:
        return text
    cut = text[:max_chars]
    space = cut.rfind(" ")
    if space > 0.8 * max_chars:
        cut = cut[:space]
    return cut.rstrip() + " ..."


def _unstored(record: dict[str, Any], k: int) -> list[str]:
    """Ids among the record's top ``k`` whose passage text the retrieval file does not hold."""
    return record["doc_ids"][len(record["texts"]):k]


def attach_texts(records: list[dict[str, Any]], dataset: str, k: int) -> list[dict[str, Any]]:
    """Fill in, from the dataset's corpus, the passage texts of the top ``k`` that a retrieval
    record does not store; the corpus is read only when some record needs it."""
    if not any(_unstored(rec, k) for rec in records):
        return records
    ds = load_dataset(dataset, "train")
    filled = []
    for rec in records:
        extra = _unstored(rec, k)
        missing = [d for d in extra if d not in ds.corpus]
        if missing:
            raise DataError(f"query {rec['query_id']}: passages {missing[:3]} of the retrieval file "
                            f"are not in the {ds.name} corpus")
        filled.append({**rec, "texts": rec["texts"] + [ds.passage_text(d) for d in extra]})
    return filled


def _top(record: dict[str, Any], k: int) -> int:
    """How many of the record's passages take part (all of the top ``k`` need their text)."""
    top = min(k, len(record["doc_ids"]))
    if _unstored(record, k):
        raise DataError(
            f"query {record['query_id']}: the retrieval file holds {len(record['texts'])} passage "
            f"texts, the comparisons need {top} (attach_texts reads them from the corpus)"
        )
    return top


def comparison_requests(
    records: list[dict[str, Any]], config: LLMConfig, settings: ComparisonSettings
) -> list[dict[str, Any]]:
    """Judge requests, grouped so that consecutive prompts share a prefix: per query, per
    passage #1 (in rank order), then by passage #2's rank."""
    out = []
    logprobs = settings.judge_mode == "logprobs"
    for rec in records:
        top = _top(rec, settings.k)
        ids, texts = rec["doc_ids"], [truncate(t, settings.max_chars) for t in rec["texts"][:top]]
        asked = []
        for i, j in candidate_pairs(top, settings.pairs):
            asked.append((i, j, pair_id(rec["query_id"], ids[i], ids[j], "ab")))
            if settings.both_orders:
                asked.append((j, i, pair_id(rec["query_id"], ids[i], ids[j], "ba")))
        for first, second, cid in sorted(asked):
            out.append(chat_request(
                cid, prompts.compare(rec["query"], texts[first], texts[second]), model=config.model,
                temperature=0.0, max_tokens=settings.max_tokens, logprobs=logprobs, top_logprobs=10,
            ))
    return out


def judged_pairs(
    records: list[dict[str, Any]], results: dict[str, dict[str, Any]], settings: ComparisonSettings
) -> list[Pair]:
    """Every candidate pair of every record with the judge's verdict on it (missing ones too)."""
    pairs = []
    for rec in tqdm(records, desc="judging", unit="query", disable=len(records) < 1000):
        top = _top(rec, settings.k)
        qid, ids, texts, scores = rec["query_id"], rec["doc_ids"], rec["texts"], rec["scores"]
        for i, j in candidate_pairs(top, settings.pairs):
            ab = results.get(pair_id(qid, ids[i], ids[j], "ab"))
            ba = results.get(pair_id(qid, ids[i], ids[j], "ba"))
            if settings.both_orders:
                verdict = judge_logprobs(ab, ba, settings.agreeing_only)
            else:
                verdict = judge_text(ab)
            pairs.append(Pair(qid, rec["query"], (ids[i], ids[j]), (texts[i], texts[j]), (i + 1, j + 1),
                              (float(scores[i]), float(scores[j])), verdict))
    return pairs


def answered(pairs: list[Pair]) -> list[Pair]:
    """The pairs the judge answered (in both orders in log-prob mode): the teachers' pairs."""
    return [p for p in pairs if p.verdict.status != "missing"]


def build_preferences(
    records: list[dict[str, Any]],
    results: dict[str, dict[str, Any]],
    config: LLMConfig,
    settings: ComparisonSettings,
    qrels: Mapping[str, Mapping[str, int]] | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Judge every pair: one triple per decided pair, plus a summary of the run (with the
    training ``qrels``, also the judge's accuracy on the label-checkable pairs: ``label_check``)."""
    pairs = judged_pairs(records, results, settings)
    judgements = [p.verdict for p in pairs]
    status = Counter({"decided": 0, "unparseable": 0, "missing": 0, "dropped_disagreeing": 0})
    status.update(j.status for j in judgements)
    triples = [{**p.triple(p.verdict.winner, JUDGE_TEACHER), "mode": settings.judge_mode}
               for p in pairs if p.verdict.winner is not None]
    asked = (pair_id(p.query_id, *p.ids, order) for p in pairs for order in ("ab", "ba"))
    results_used = [results[cid] for cid in asked if cid in results]
    answers = Counter(
        str(c) if c else "unparseable" for verdict in judgements for c in verdict.choices
    )
    decided = status["decided"]
    summary = {
        "queries": len(records), "pairs": len(judgements), **status,
        "text_answers": dict(answers),
        "higher_ranked_wins_share": (
            sum(t["winner_rank"] < t["loser_rank"] for t in triples) / decided if decided else None
        ),
        **(order_stats(judgements) if settings.both_orders else {
            "position_bias_rate": None, "inconsistent_share": None,
        }),
        "prompt_tokens": sum(usage(r)[0] for r in results_used),
        "completion_tokens": sum(usage(r)[1] for r in results_used),
        "settings": asdict(settings), "llm": config.provenance(), "prompt_version": prompts.COMPARE_VERSION,
    }
    if qrels is not None:
        _, report = teach(answered(pairs), JUDGE_TEACHER, qrels)
        summary["label_check"] = {k: v for k, v in report.items()
                                  if k not in ("teacher", "threshold", "calibration")}
    return triples, summary


def answers_path(folder: Path, settings: ComparisonSettings) -> Path:
    """The committed compact judge answers of a comparison run (see :func:`compact_answer`)."""
    return folder / f"{settings.tag()}.answers.jsonl"


def seed_results(results_path: Path, answers: Path) -> int:
    """Append the committed compact answers that ``results_path`` lacks, so that a fresh
    checkout re-sends nothing already judged; returns how many were added."""
    if not answers.is_file():
        return 0
    have = set(load_results(results_path)) if results_path.is_file() else set()
    missing = []
    for line, rec in read_jsonl_numbered(answers):
        if not isinstance(rec.get("custom_id"), str) or not rec["custom_id"]:
            raise DataError(f"{answers}:{line}: judge answer without a 'custom_id'; restore the file "
                            f"(`git checkout -- {portable(answers)}`) or delete that line (its pair is "
                            "then asked again)")
        if rec["custom_id"] not in have:
            missing.append(rec)
    if missing:
        with JsonlAppender(results_path, fsync=False) as out:
            for rec in missing:
                out.append(rec)
        logger.info("seeded %d judge answers from %s", len(missing), answers)
    return len(missing)


def save_answers(results_path: Path, answers: Path, requests: list[dict[str, Any]]) -> int:
    """Write the compact form of every answer in ``results_path`` to ``answers``: those of
    ``requests`` in request order, then any others (queries outside ``--limit``, pairs of an
    earlier retrieval), so a partial run never drops committed answers; returns how many."""
    results = load_results(results_path)
    order = [r["custom_id"] for r in requests if r["custom_id"] in results]
    asked = set(order)
    order += [cid for cid in results if cid not in asked]
    write_jsonl(answers, [compact_answer(results[cid]) for cid in order])
    logger.info("%d judge answers (%d of this run's %d requests) saved in compact form to %s",
                len(order), len(asked), len(requests), answers)
    return len(order)


def earlier_runs(summary_file: Path, settings: ComparisonSettings) -> tuple[Sent, float]:
    """What the earlier runs behind an output sent and how long they took, from its summary
    (``sent_all_runs`` and ``seconds_all_runs``, else the one run's ``sent_this_run`` and
    ``seconds``), so that a rebuild from committed answers keeps that record; nothing when there
    is no summary or it was made with other settings."""
    if not summary_file.is_file():
        return Sent(), 0.0
    old = read_json(summary_file, "fix it, or delete it and run again: the answers are kept, the earlier "
                    "runs' token counts are lost")
    if old.get("settings") != asdict(settings):
        return Sent(), 0.0
    record = old.get("sent_all_runs") or old.get("sent_this_run") or {}
    sent = Sent(*(int(record.get(key, 0)) for key in ("requests", "prompt_tokens", "completion_tokens")))
    return sent, float(old.get("seconds_all_runs", old.get("seconds", 0.0)))


def run_comparisons(
    dataset: str, model_name: str, config: LLMConfig, settings: ComparisonSettings,
    retrieval_file: Path | None = None, limit: int | None = None,
    qrels: Mapping[str, Mapping[str, int]] | None = None,
) -> Path | None:
    """Ask the judge about the first ``limit`` (all) queries of the retrieval file, write
    ``<dataset>_preferences.jsonl`` (with ``limit``: ``.limit<N>.jsonl``) and its summary;
    resumes from earlier results; None for a dry run. With the training ``qrels`` the summary
    says how often the judge is right on the label-checkable pairs (``label_check``)."""
    source = retrieval_file or retrieval_path(dataset, model_name)
    check_limit(limit)
    if not source.is_file():
        raise DataError(f"{source}: retrieval file not found; make it with "
                        f"`python retrieval.py {model_name} {dataset}`")
    records = load_retrieval(source, model_name)[:limit]
    stray = next((r["query_id"] for r in records if qrels is not None and r["query_id"] not in qrels), None)
    if stray is not None:  # the judge would be asked about a query stage 2 never trains on
        raise DataError(f"{source}: query {stray!r} is not a training query of {dataset}; make the file "
                        f"again with `python retrieval.py {model_name} {dataset}`")
    records = attach_texts(records, dataset, settings.k)
    folder = comparison_dir(dataset, config, model_name)
    start = time.perf_counter()
    requests = comparison_requests(records, config, settings)
    answers, results_path = answers_path(folder, settings), folder / f"{settings.tag()}.results.jsonl"
    seeded = seed_results(results_path, answers)
    try:
        results, sent = execute_requests(config, folder, settings.tag(), requests, desc="comparisons")
    finally:  # also when stopped or incomplete: the answers so far are kept in compact form
        if not config.dry_run and results_path.is_file():
            save_answers(results_path, answers, requests)
    if results is None:
        return None
    triples, summary = build_preferences(records, results, config, settings, qrels)
    out = preferences_path(dataset, config, model_name, limit)
    earlier, earlier_seconds = earlier_runs(out.with_suffix(".summary.json"), settings)
    seconds = round(time.perf_counter() - start, 1)
    summary.update(answers_seeded_from_file=seeded, sent_this_run=asdict(sent),
                   sent_all_runs=asdict(sent + earlier),
                   retrieval_file=portable(source.resolve()), stage1_model=model_name,
                   requests=len(requests), seconds=seconds,
                   seconds_all_runs=round(seconds + earlier_seconds, 1))
    write_jsonl(out, triples)
    write_json(out.with_suffix(".summary.json"), with_commands(summary))
    logger.info("wrote %d preference triples (%d of %d pairs decided) to %s", len(triples),
                summary["decided"], summary["pairs"], out)
    return out
