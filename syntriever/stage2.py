"""Stage 2, alignment: LLM preferences between the stage-1 model's top passages.

1. :func:`retrieve_training_queries` ranks the corpus for every training query with the stage-1
   model and writes ``generated/<dataset>/retrieval-<model>.jsonl``.
2. :func:`run_comparisons` asks the LLM, for the top ``k`` (5) passages of each query, which of
   two passages is more relevant, for all C(k, 2) pairs (or the first ``pairs`` in rank order).
   Each decided pair is a triple (query, winner, loser) in ``<dataset>_preferences.jsonl``.
3. :func:`build_preference_examples` turns the triples into (query, preferred, less_preferred)
   training columns for :class:`~syntriever.losses.PartialPlackettLuceLoss`.

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
more). ``max_chars`` truncates passages in the
judge's prompt only (the triples keep the full texts); the local default (1000 characters) bounds
prompt processing on CPU and keeps two passages within the server's context per slot.

Batching: :func:`syntriever.training.train` uses sentence-transformers'
``BatchSamplers.NO_DUPLICATES``. Its ``NoDuplicatesBatchSampler`` (sentence-transformers 6.2,
``base/sampler.py``) adds a sample to the batch being built only if *none* of its text values
(any column) is already in that batch, and otherwise leaves it for a later batch. The ~C(k, 2)
triples of one query share the query text, so they always land in different batches, as the
partial Plackett-Luce loss needs (another triple of the same query would make its passages false
in-batch negatives). :class:`~syntriever.losses.PartialPlackettLuceLoss` also refuses a batch
with repeated query tokens, as a second guard.
"""

from __future__ import annotations

import itertools
import logging
import re
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from datasets import Dataset
from sentence_transformers import SentenceTransformer
from tqdm import tqdm

from syntriever import prompts
from syntriever.cli import timed
from syntriever.data import load_dataset
from syntriever.encoders import add_prefix, open_encoder
from syntriever.errors import UserError
from syntriever.jsonl import (
    DataError,
    JsonlAppender,
    read_jsonl_numbered,
    write_json,
    write_jsonl,
)
from syntriever.llm.config import LLMConfig
from syntriever.llm.requests import (
    answer_text,
    chat_request,
    generated_tokens,
    load_results,
    logprob_margin,
    top_logprobs,
    usage,
)
from syntriever.llm.runner import execute_requests
from syntriever.metrics import evaluate_run
from syntriever.paths import file_safe, generated_dir, portable
from syntriever.provenance import with_commands
from syntriever.retrieval import dense_search
from syntriever.synthesis import check_limit, limited_name, training_queries

logger = logging.getLogger(__name__)

JUDGE_MODES = ("text", "logprobs")
# the embedded judge's defaults (stage2/parse_comparison.py; remote judges: K = 5, no truncation)
LOCAL_K = 3  # C(3,2) pairs x 2 orders: ~2.7 h for SciFact with the 1.5B judge on 2 cores
LOCAL_MAX_CHARS = 600  # SciFact, 0.5B judge, 2 cores: 0.65 req/s at 1000 characters, 0.97 at 600
ONE, TWO = ("1", "#1"), ("2", "#2")
RETRIEVAL_KEYS = ("query_id", "query", "doc_ids", "scores", "texts")
PREFERENCE_KEYS = ("query_id", "query", "winner_id", "loser_id", "winner", "loser")


# --------------------------------------------------------------------------------------------
# Retrieval with the stage-1 model
# --------------------------------------------------------------------------------------------


def retrieval_path(dataset: str, model_name: str) -> Path:
    """``generated/<dataset>/retrieval-<model>.jsonl``."""
    return generated_dir(dataset) / f"retrieval-{file_safe(model_name)}.jsonl"


def retrieve_training_queries(
    model_name: str,
    dataset: str,
    k: int = 100,
    text_k: int = 0,
    *,
    batch_size: int = 32,
    max_seq_length: int | None = None,
    use_cache: bool = True,
    index: str = "exact",
    devices: Sequence[str] | None = None,
    shard_size: int | None = None,
) -> Path:
    """Rank the corpus for every training query (train split, a relevant passage) with the
    stage-1 model; write one JSONL line per query and a summary; return the JSONL path.

    Lines: ``{"query_id", "query", "doc_ids", "scores", "texts"}``, ``k`` ranked doc ids and
    cosine scores, and the passage texts of the first ``text_k`` (none by default: the
    comparisons read them from the corpus, :func:`attach_texts`, which keeps the file small
    enough to commit, ~2.2 KB a query at k = 100). ``index``, ``devices`` and ``shard_size``
    choose the search backend, encoding processes and corpus shards (``dense_search``)."""
    if not 0 <= text_k <= k:
        raise UserError(f"need 0 <= text_k <= k, got text_k={text_k}, k={k}")
    timings: dict[str, float] = {}
    with timed(timings, "load_s"):
        ds = load_dataset(dataset, "train")
        queries = training_queries(ds)
        model, model_path = open_encoder(model_name, ds.name, max_seq_length=max_seq_length)
    with timed(timings, "search_total_s"):
        run, stats = dense_search(model, ds.corpus, queries, k, batch_size, use_cache,
                                  index=index, devices=devices, shard_size=shard_size)
    rows = []
    for qid, query in queries.items():
        ranked = run[qid]  # insertion order is rank order
        doc_ids = list(ranked)
        rows.append({
            "query_id": qid, "query": query, "doc_ids": doc_ids,
            "scores": [round(ranked[d], 6) for d in doc_ids],
            "texts": [ds.passage_text(d) for d in doc_ids[:text_k]],
        })
    out = retrieval_path(ds.name, model_name)
    write_jsonl(out, rows)
    cutoffs = sorted({1, max(text_k, 1), 10, k})
    qrels = {qid: ds.qrels[qid] for qid in queries}
    aggregate, _ = evaluate_run(qrels, run, cutoffs)
    summary = {
        "model": model_name, "model_path": portable(model_path), "dataset": ds.name,
        "split": "train", "queries": len(rows), "corpus": len(ds.corpus), "k": k, "text_k": text_k,
        "recall": {f"Recall@{c}": round(aggregate[f"Recall@{c}"], 4) for c in cutoffs if c <= k},
        "mrr@10": round(aggregate["MRR@10"], 4), "max_seq_length": model.max_seq_length,
        "timings": {**timings, **stats.timings}, "passages_per_s": stats.passages_per_s,
        "corpus_embeddings_cached": stats.corpus_cache_hit, "index": index,
        "devices": list(devices) if devices else None, "shard_size": stats.shard_size,
    }
    write_json(out.with_suffix(".summary.json"), with_commands(summary))
    logger.info("wrote %d ranked lists to %s (%s)", len(rows), out, summary["recall"])
    return out


def load_retrieval(path: Path) -> list[dict[str, Any]]:
    """Read a retrieval file, checking every line."""
    records = []
    for line, rec in read_jsonl_numbered(path):
        for key in RETRIEVAL_KEYS:
            if key not in rec:
                raise DataError(f"{path}:{line}: retrieval record lacks {key!r}")
        if len(rec["doc_ids"]) != len(rec["scores"]) or len(rec["texts"]) > len(rec["doc_ids"]):
            raise DataError(f"{path}:{line}: doc_ids, scores and texts do not line up")
        records.append(rec)
    return records


# --------------------------------------------------------------------------------------------
# Comparison requests
# --------------------------------------------------------------------------------------------


@dataclass
class ComparisonSettings:
    """How passages are compared (paper: K = 5, all 10 pairs, text answers, temperature 0)."""

    k: int = 5
    pairs: int | None = None  # first N pairs in rank order; None = all C(k, 2)
    judge_mode: str = "text"
    max_chars: int | None = None  # passage truncation in the judge's prompt only
    max_tokens: int | None = None  # None: 8 for text, 6 for logprobs
    agreeing_only: bool = False  # logprobs: drop pairs whose two orders prefer different passages

    def __post_init__(self) -> None:
        if self.judge_mode not in JUDGE_MODES:
            raise ValueError(f"judge_mode must be one of {JUDGE_MODES}, not {self.judge_mode!r}")
        if self.k < 2:
            raise ValueError("k must be at least 2 to form a pair")
        if self.agreeing_only and self.judge_mode != "logprobs":
            raise ValueError("agreeing_only needs both orders: use judge_mode='logprobs'")
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


# --------------------------------------------------------------------------------------------
# Judging
# --------------------------------------------------------------------------------------------

_CHOICE = re.compile(r"^(?:passage\s*)?#?\s*([12])(?![0-9])")


def parse_choice(text: str) -> int | None:
    """1 or 2 when the answer starts with "Passage #1"/"Passage #2", "#1"/"#2" or "1"/"2"
    (case, spaces and markdown ignored); None (unparseable) otherwise. Nothing is guessed."""
    match = _CHOICE.match(text.strip().lower().lstrip("*_`\"'([ \n"))
    return int(match.group(1)) if match else None


def answer_position(result: dict[str, Any]) -> int | None:
    """Index of the first generated token that is the digit "1" or "2" (" 1", "#1" too)."""
    for position, token in enumerate(generated_tokens(result)):
        if token.strip().lstrip("#").strip() in ("1", "2"):
            return position
    return None


def choice_score(result: dict[str, Any]) -> float | None:
    """log P("1") - log P("2") at the answer digit; None when no digit was generated."""
    position = answer_position(result)
    if position is None:
        return None
    return logprob_margin(top_logprobs(result, position), ONE, TWO)


@dataclass
class Judgement:
    """The verdict on one pair: ``winner`` "a" (higher-ranked), "b", or None."""

    winner: str | None
    status: str  # decided, unparseable, missing, dropped_disagreeing
    answers: list[str] = field(default_factory=list)
    choices: list[int | None] = field(default_factory=list)  # parsed text answer per order
    scores: dict[str, float | None] = field(default_factory=dict)


def judge_text(ab: dict[str, Any] | None) -> Judgement:
    """Paper mode: the text answer with A as #1."""
    if ab is None:
        return Judgement(None, "missing")
    answer = answer_text(ab).strip()
    choice = parse_choice(answer)
    winner = {1: "a", 2: "b"}.get(choice)
    return Judgement(winner, "decided" if winner else "unparseable", [answer], [choice])


def judge_logprobs(
    ab: dict[str, Any] | None, ba: dict[str, Any] | None, agreeing_only: bool = False
) -> Judgement:
    """Both orders: the sign of ``d = (score(A first) - score(B first)) / 2``."""
    if ab is None or ba is None:
        return Judgement(None, "missing")
    answers = [answer_text(ab).strip(), answer_text(ba).strip()]
    choices = [parse_choice(a) for a in answers]
    s_ab, s_ba = choice_score(ab), choice_score(ba)
    if s_ab is None or s_ba is None:
        return Judgement(None, "unparseable", answers, choices, {"ab": s_ab, "ba": s_ba, "a_over_b": None})
    d = (s_ab - s_ba) / 2
    scores = {"ab": s_ab, "ba": s_ba, "a_over_b": d}
    if d == 0:
        return Judgement(None, "unparseable", answers, choices, scores)
    if agreeing_only and orders_disagree(s_ab, s_ba):
        return Judgement(None, "dropped_disagreeing", answers, choices, scores)
    return Judgement("a" if d > 0 else "b", "decided", answers, choices, scores)


def orders_disagree(s_ab: float, s_ba: float) -> bool:
    """True when the two orders' scores prefer different passages (or one has no preference)."""
    return not ((s_ab > 0 and s_ba < 0) or (s_ab < 0 and s_ba > 0))


def order_stats(judgements: list[Judgement]) -> dict[str, Any]:
    """Position bias and inconsistency over the pairs asked in both orders.

    ``position_bias_rate``: among pairs whose two text answers both parse, the share picking
    the same *position* (#1 both times or #2 both times). ``inconsistent_share``: among the same
    pairs, the share whose answers name different *passages*; with two orders this is the same
    event, so both numbers agree. ``score_inconsistent_share``: among pairs with both log-prob
    scores, the share whose per-order scores prefer different passages."""
    both = [j.choices for j in judgements if len(j.choices) == 2 and None not in j.choices]
    # A is #1 in the first order and B in the second: the same position is the other passage
    same = Counter(c[0] for c in both if c[0] == c[1])
    rate = sum(same.values()) / len(both) if both else None
    scored = [j.scores for j in judgements if None not in (j.scores.get("ab"), j.scores.get("ba"))]
    return {
        "pairs_with_two_text_answers": len(both),
        "position_bias_rate": rate, "both_first": same[1], "both_second": same[2],
        "inconsistent_share": rate,
        "pairs_with_two_scores": len(scored),
        "score_inconsistent_share": (
            sum(orders_disagree(s["ab"], s["ba"]) for s in scored) / len(scored) if scored else None
        ),
    }


def build_preferences(
    records: list[dict[str, Any]],
    results: dict[str, dict[str, Any]],
    config: LLMConfig,
    settings: ComparisonSettings,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Judge every pair: one triple per decided pair, plus a summary of the run."""
    triples, judgements = [], []
    status = Counter({"decided": 0, "unparseable": 0, "missing": 0, "dropped_disagreeing": 0})
    used = []
    for rec in tqdm(records, desc="judging", unit="query", disable=len(records) < 1000):
        top = _top(rec, settings.k)
        qid, ids, texts = rec["query_id"], rec["doc_ids"], rec["texts"]
        for i, j in candidate_pairs(top, settings.pairs):
            ab = results.get(pair_id(qid, ids[i], ids[j], "ab"))
            ba = results.get(pair_id(qid, ids[i], ids[j], "ba"))
            used += [r for r in (ab, ba) if r is not None]
            if settings.both_orders:
                verdict = judge_logprobs(ab, ba, settings.agreeing_only)
            else:
                verdict = judge_text(ab)
            judgements.append(verdict)
            status[verdict.status] += 1
            if verdict.winner is None:
                continue
            win, lose = (i, j) if verdict.winner == "a" else (j, i)
            triples.append({
                "query_id": qid, "query": rec["query"], "winner_id": ids[win], "loser_id": ids[lose],
                "winner": texts[win], "loser": texts[lose], "winner_rank": win + 1,
                "loser_rank": lose + 1, "mode": settings.judge_mode, "raw_answers": verdict.answers,
                "scores": verdict.scores,
            })
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
        "prompt_tokens": sum(usage(r)[0] for r in used),
        "completion_tokens": sum(usage(r)[1] for r in used),
        "settings": asdict(settings), "llm": config.provenance(), "prompt_version": prompts.COMPARE_VERSION,
    }
    return triples, summary


def compact_answer(result: dict[str, Any]) -> dict[str, Any]:
    """A judge result in the Batch output format, cut down to what the judge reads: the answer
    text, the generated tokens, and at the answer digit its log-probability and the alternatives
    spelling "1"/"2" plus the lowest listed one (the floor of :func:`logprob_margin`), and the
    token usage. Judging the compact record gives the same scores as the full one (tested);
    it is about 13x smaller, small enough to commit."""
    choice = result["response"]["body"]["choices"][0]
    content = (choice.get("logprobs") or {}).get("content") or []
    position = answer_position(result)
    digits = {t.lower() for t in (*ONE, *TWO)}
    tokens: list[dict[str, Any]] = []
    for index, entry in enumerate(content):
        if index != position:
            tokens.append({"token": entry["token"]})
            continue
        alternatives = entry.get("top_logprobs") or []
        keep = [a for a in alternatives if a["token"].strip().lower() in digits]
        lowest = min(alternatives, key=lambda a: a["logprob"]) if alternatives else None
        if lowest is not None and lowest not in keep:
            keep.append(lowest)
        tokens.append({"token": entry["token"], "logprob": entry["logprob"],
                       "top_logprobs": [{"token": a["token"], "logprob": a["logprob"]} for a in keep]})
    used = result["response"]["body"].get("usage") or {}
    body = {
        "choices": [{
            "finish_reason": choice.get("finish_reason"),
            "message": {"content": answer_text(result)},
            **({"logprobs": {"content": tokens}} if content else {}),
        }],
        "usage": {k: used[k] for k in ("prompt_tokens", "completion_tokens") if k in used},
    }
    return {"custom_id": result["custom_id"], "response": {"status_code": 200, "body": body}}


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


def run_comparisons(
    dataset: str, model_name: str, config: LLMConfig, settings: ComparisonSettings,
    retrieval_file: Path | None = None, limit: int | None = None,
) -> Path | None:
    """Ask the judge about the first ``limit`` (all) queries of the retrieval file, write
    ``<dataset>_preferences.jsonl`` (with ``limit``: ``.limit<N>.jsonl``) and its summary;
    resumes from earlier results; None for a dry run."""
    source = retrieval_file or retrieval_path(dataset, model_name)
    check_limit(limit)
    if not source.is_file():
        raise DataError(f"{source}: retrieval file not found; make it with "
                        f"`python retrieval.py {model_name} {dataset}`")
    records = attach_texts(load_retrieval(source)[:limit], dataset, settings.k)
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
    triples, summary = build_preferences(records, results, config, settings)
    summary.update(answers_seeded_from_file=seeded, sent_this_run=asdict(sent),
                   retrieval_file=portable(source.resolve()), stage1_model=model_name,
                   requests=len(requests), seconds=round(time.perf_counter() - start, 1))
    out = preferences_path(dataset, config, model_name, limit)
    write_jsonl(out, triples)
    write_json(out.with_suffix(".summary.json"), with_commands(summary))
    logger.info("wrote %d preference triples (%d of %d pairs decided) to %s", len(triples),
                summary["decided"], summary["pairs"], out)
    return out


# --------------------------------------------------------------------------------------------
# Training examples
# --------------------------------------------------------------------------------------------


def load_preferences(path: Path) -> list[dict[str, Any]]:
    """Read ``<dataset>_preferences.jsonl``, checking every line."""
    triples = []
    for line, rec in read_jsonl_numbered(path):
        for key in PREFERENCE_KEYS:
            if not isinstance(rec.get(key), str):
                raise DataError(f"{path}:{line}: preference record needs a string {key!r}")
        triples.append(rec)
    if not triples:
        raise DataError(f"{path}: no preference triples")
    return triples


def build_preference_examples(triples: list[dict[str, Any]], model: SentenceTransformer) -> Dataset:
    """Columns (query, preferred, less_preferred), prefixed for ``model``.

    The triples of one query repeat its text; ``BatchSamplers.NO_DUPLICATES`` (see the module
    docstring) keeps them in separate batches."""
    if not triples:
        raise ValueError("no preference triples")
    rows = {
        "query": add_prefix(model, [t["query"] for t in triples], "query"),
        "preferred": add_prefix(model, [t["winner"] for t in triples], "document"),
        "less_preferred": add_prefix(model, [t["loser"] for t in triples], "document"),
    }
    per_query = Counter(t["query_id"] for t in triples)
    logger.info("stage-2 examples: %d triples of %d queries (at most %d per query)", len(triples),
                len(per_query), max(per_query.values()))
    return Dataset.from_dict(rows)
