"""Stage 2, alignment: training examples from the judge's preference triples.

:func:`teacher_preferences` rebuilds the triples of any teacher (:mod:`syntriever.teachers`:
the judge, its confident pairs, the qrels oracle, the retrieval order) over the pairs the judge
compared, from the committed retrieval file and judge answers, restricted to the training
split's queries (``train-nodev`` keeps the dev queries out of stage 2 entirely); no LLM call.

The triples (query, winner, loser) come from :func:`syntriever.judge.run_comparisons`, which
judges the stage-1 model's top passages of each training query
(:func:`syntriever.retrieval.retrieve_training_queries`). :func:`build_preference_examples` turns
them into (query, preferred, less_preferred) training columns for
:class:`~syntriever.losses.PartialPlackettLuceLoss` (or the Bradley-Terry ablation).

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

import dataclasses
import functools
import logging
from collections import Counter
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from datasets import Dataset
from sentence_transformers import SentenceTransformer

from syntriever import prompts
from syntriever.data import check_available, load_dataset, relevant_query_ids
from syntriever.encoders import add_prefix, load_encoder, resolve
from syntriever.errors import UserError
from syntriever.jsonl import DataError, read_json, read_jsonl_numbered
from syntriever.judge import (
    ComparisonSettings,
    answered,
    answers_path,
    attach_texts,
    judged_pairs,
    preferences_path,
)
from syntriever.likelihood import likelihood_path, load_likelihoods, with_likelihood
from syntriever.llm.config import LLMConfig
from syntriever.llm.local import DEFAULT_JUDGE_PRESET
from syntriever.llm.requests import load_results
from syntriever.names import model_dir, name_split, top_k_error, train_command
from syntriever.paths import file_safe, portable
from syntriever.precision import resolve_precision
from syntriever.provenance import CARD_NAME
from syntriever.retrieval import encode, load_retrieval, retrieval_path
from syntriever.teachers import CHECKABLE_ONLY, LIKELIHOOD_OF, MIN_CALIBRATION_PAIRS, Pair, teach

logger = logging.getLogger(__name__)

PREFERENCE_KEYS = ("query_id", "query", "winner_id", "loser_id", "winner", "loser")


def load_preferences(path: Path, queries: Collection[str] | None = None) -> list[dict[str, Any]]:
    """Read ``<dataset>_preferences.jsonl``, checking every line (with ``queries``, the training
    split's query ids: that each record is about one of them)."""
    triples = []
    for line, rec in read_jsonl_numbered(path):
        for key in PREFERENCE_KEYS:
            if not isinstance(rec.get(key), str):
                raise DataError(f"{path}:{line}: preference record needs a string {key!r}")
        if rec["winner_id"] == rec["loser_id"]:
            raise DataError(f"{path}:{line}: passage {rec['winner_id']!r} is preferred to itself")
        if queries is not None and rec["query_id"] not in queries:
            raise DataError(f"{path}:{line}: query {rec['query_id']!r} is not a query of the training split")
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


def pairs_preferences(
    dataset: str, model: str, pairs_from: str | None, llm_model: str,
) -> tuple[str, Path]:
    """The stage-1 model whose judged pairs stage 2 of ``model`` uses (``pairs_from``, else
    ``model`` itself) and the preferences file the judge ``llm_model`` wrote for it."""
    pairs_model = pairs_from or model
    return pairs_model, preferences_path(dataset, LLMConfig(model=llm_model), pairs_model)


def stage1_split(model: str, folder: Path) -> str:
    """The split a stage-1 model was trained on: its card's ``split``; without a card,
    ``train-nodev`` for a ``-nodev`` name, else ``train``. Stage 2 trains on the same split."""
    card = folder / CARD_NAME
    fix = "restore the model folder, or train the stage-1 model again"
    split = read_json(card, fix).get("split") if card.is_file() else None
    return split or name_split(model)


def trained_stage1(model: str, dataset: str) -> tuple[Path, str]:
    """The folder of the trained stage-1 ``model`` for ``dataset`` and the split it was trained on
    (:func:`stage1_split`); a one-line error when it is not a trained model."""
    check_available(dataset)  # a misspelt dataset is named as such, not as a missing model
    source, preset = resolve(model, dataset)
    if preset is not None or not Path(source).is_dir():
        command = train_command(model, dataset) or (
            f"python train_stage1.py ENCODER {dataset} ... --output-name {model}")
        raise UserError(f"{model!r} is not a trained stage-1 model for {dataset} (expected "
                        f"{model_dir(file_safe(model), dataset)}); train it first: `{command}`")
    return Path(source), stage1_split(model, Path(source))


def rescore_pairs(pairs: Sequence[Pair], model: SentenceTransformer, precision: str = "auto") -> list[Pair]:
    """``pairs`` with their retrieval scores replaced by ``model``'s cosine similarities (query
    vs each full passage text, encoded as retrieval does), so that "the retrieval order" is this
    model's order; ranks stay those of the retrieval file the pairs came from. ``precision``:
    as :func:`syntriever.precision.resolve_precision` (bf16 cosines agree with fp32 to ~1e-4)."""
    if not pairs:
        return []
    precision = resolve_precision(precision, model.device.type)
    queries = list({p.query_id: p.query for p in pairs}.items())
    passages = list({d: t for p in pairs for d, t in zip(p.ids, p.texts, strict=True)}.items())
    q_emb = encode(model, [q for _, q in queries], "query", progress=False, precision=precision)
    d_emb = encode(model, [t for _, t in passages], "document", precision=precision)
    q_row = {qid: i for i, (qid, _) in enumerate(queries)}
    d_row = {d: i for i, (d, _) in enumerate(passages)}
    rescored = []
    for p in pairs:
        q = q_emb[q_row[p.query_id]]
        scores = tuple(float(np.dot(q, d_emb[d_row[d]])) for d in p.ids)
        rescored.append(dataclasses.replace(p, retrieval_scores=scores))
    return rescored


@dataclass
class ComparedPairs:
    """The pairs the judge compared for one stage-1 model, for the queries of one split."""

    pairs: list[Pair]
    qrels: dict[str, dict[str, int]]
    queries: int
    retrieval_file: Path
    answers_file: Path
    judged: dict[str, Any]  # the comparison run's summary
    made_with: tuple[str, str, int | None, bool]  # pairs model, split, top_k, re-scored by an order model


def compared_pairs(
    dataset: str, preferences: Path, pairs_model: str, split: str = "train",
    order_model: SentenceTransformer | None = None, top_k: int | None = None,
) -> ComparedPairs:
    """The pairs the judge compared for ``pairs_model`` (whose comparison run wrote
    ``preferences`` and its summary) with the judge's verdicts, for the queries of ``split``;
    re-scored by ``order_model`` when given (:func:`rescore_pairs`). ``top_k``: every pair of
    the top K instead, answered or not (an unanswered pair's verdict is "missing"), for a pointwise
    judge that replaces the verdicts (:func:`syntriever.likelihood.with_likelihood`)."""
    summary_file = preferences.with_suffix(".summary.json")
    make = f"python stage2/parse_comparison.py {pairs_model} {dataset}"
    if not summary_file.is_file():
        raise DataError(f"{summary_file}: comparison summary not found; make it with `{make}`")
    restore = f"git checkout -- {portable(summary_file)}"
    judged = read_json(summary_file, f"make it anew with `{make}` (if it is committed: `{restore}`)")
    settings = ComparisonSettings(**judged["settings"])
    answers = answers_path(preferences.parent, settings)
    if not answers.is_file():
        raise DataError(f"{answers}: judge answers not found; make them with `{make}`")
    qrels = load_dataset(dataset, split).qrels
    source = retrieval_path(dataset, pairs_model)
    records = [rec for rec in load_retrieval(source, pairs_model) if rec["query_id"] in qrels]
    if not records:
        raise DataError(f"{source}: no query of split {split!r}; make it with "
                        f"`python retrieval.py {pairs_model} {dataset}`")
    if len(records) < (wanted := len(relevant_query_ids(qrels))):  # retrieval.py writes these queries
        _warn_missing_records(portable(source), wanted - len(records), wanted, split, pairs_model, dataset)
    if top_k is not None:
        settings = dataclasses.replace(settings, k=top_k, pairs=None)
    records = attach_texts(records, dataset, settings.k)
    pairs = judged_pairs(records, load_results(answers), settings)
    pairs = answered(pairs) if top_k is None else pairs
    if order_model is not None:
        pairs = rescore_pairs(pairs, order_model)
    return ComparedPairs(pairs, qrels, len(records), source, answers, judged,
                         (pairs_model, split, top_k, order_model is not None))


@functools.cache  # once per file and split: a script may build the pairs twice (score_likelihood --top-k)
def _warn_missing_records(source: str, missing: int, wanted: int, split: str, pairs_model: str,
                          dataset: str) -> None:
    """Say that queries of ``split`` with a relevant passage have no record in the retrieval file."""
    logger.warning("%s: %d of the %d queries of split %r with a relevant passage have no retrieval "
                   "record; stage 2 leaves them out (make the file again with `python retrieval.py %s "
                   "%s` to use them)", source, missing, wanted, split, pairs_model, dataset)


def order_model_for(
    model: str, pairs_model: str, dataset: str, loaded: SentenceTransformer | None = None
) -> SentenceTransformer | None:
    """The encoder whose scores give "the retrieval order" of ``pairs_model``'s pairs when stage 2
    trains ``model``: ``model`` itself (``loaded``, or loaded now) when the pairs are another
    model's, None when they are its own (the retrieval file's scores are then its scores)."""
    if file_safe(pairs_model) == file_safe(model):
        return None
    return loaded if loaded is not None else load_encoder(model, dataset)


def likelihood_pairs(
    compared: ComparedPairs, teacher: str, preferences: Path, pairs_model: str, dataset: str,
    top_k: int | None = None,
) -> tuple[list[Pair], dict[str, Any]]:
    """The ``compared`` pairs with the query likelihood's verdicts and the report's record of them;
    refuses scores that do not cover every pair the likelihood ``teacher`` decides (the checkable
    ones for a ``-checkable`` teacher), which would silently make it another teacher. The scores
    lie beside ``preferences``, in the comparison folder of the judge that made them."""
    pairs, qrels = compared.pairs, compared.qrels
    judge = compared.judged.get("llm") or {"backend": "local", "model": DEFAULT_JUDGE_PRESET}
    scores_file = likelihood_path(preferences.parent)
    checkable_only = LIKELIHOOD_OF[teacher] in CHECKABLE_ONLY
    scope = f" --top-k {top_k}" if top_k is not None else " --checkable-only" if checkable_only else ""
    local = judge["backend"] == "local"  # score_likelihood.py runs the LLM of the judge's folder here
    scorer = judge["model"] if local else DEFAULT_JUDGE_PRESET
    make = (f"`python stage2/score_likelihood.py MODEL {dataset} --pairs-from {pairs_model}{scope} "
            f"--llm-model {scorer}` (MODEL: the stage-1 model)")
    if not local:
        make = (f"an embedded LLM, on pairs it judged ({judge['model']}, {judge['backend']}, judged these): "
                f"`python stage2/parse_comparison.py {pairs_model} {dataset} --llm-model {scorer}`, then "
                f"{make}, and train with --llm-model {scorer}")
    scores, cut = load_likelihoods(scores_file)
    scored = with_likelihood(pairs, scores)
    needed = [p for p in scored if not checkable_only or p.checkable_truth(qrels) is not None]
    missing = sum(p.verdict.status == "missing" for p in needed)
    if missing:
        raise DataError(f"{scores_file}: {missing} of the {len(needed)} pairs teacher {teacher} decides have "
                        f"no query likelihood score; make them with {make}")
    return scored, {
        "verdicts_from": "query likelihood (the report's judge_* fields are its figures)",
        "likelihood_file": portable(scores_file.resolve()), "likelihood_max_chars": cut,
        "likelihood_prompt": prompts.LIKELIHOOD_VERSION, "likelihood_pairs_scored": len(needed),
        "likelihood_top_k": top_k,
    }


def teacher_preferences(
    dataset: str, preferences: Path, pairs_model: str, teacher: str, split: str = "train",
    min_pairs: int = MIN_CALIBRATION_PAIRS, order_model: SentenceTransformer | None = None,
    top_k: int | None = None, compared: ComparedPairs | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The ``teacher``'s triples over the pairs the judge compared for ``pairs_model`` (whose
    comparison run wrote ``preferences`` and its summary), for the queries of ``split``, and
    the teacher's report (:func:`syntriever.teachers.teacher_report`).

    ``order_model``: the stage-1 model being trained when it is not ``pairs_model``; its own
    scores of the pairs (:func:`rescore_pairs`) then give "the retrieval order" (the identity
    teacher, judge-retriever's score gap, the confident judge's calibration and the report's
    order accuracies) instead of the retrieval file's scores. A ``likelihood`` teacher decides on
    the query likelihood scores beside ``preferences`` (:func:`syntriever.likelihood.likelihood_path`,
    made by ``stage2/score_likelihood.py``) instead of the judge's answers; with ``top_k``, over
    every pair of the top K (``score_likelihood.py --top-k K`` scores their passages).
    ``compared``: the pairs already built by :func:`compared_pairs` with these arguments (pairs
    model, split, top K and whether re-scored are checked), so that several teachers over the same
    pairs load and re-score them once."""
    if (problem := top_k_error(teacher, top_k)) is not None:
        raise UserError(problem)
    if compared is None:
        compared = compared_pairs(dataset, preferences, pairs_model, split, order_model, top_k)
    elif compared.made_with != (made_with := (pairs_model, split, top_k, order_model is not None)):
        raise ValueError(f"the given pairs were made with {compared.made_with}, not {made_with}")
    pairs, extra = compared.pairs, {}
    if teacher in LIKELIHOOD_OF:
        pairs, extra = likelihood_pairs(compared, teacher, preferences, pairs_model, dataset, top_k)
    triples, report = teach(pairs, teacher, compared.qrels, min_pairs)
    report.update(split=split, queries=compared.queries, pairs_model=pairs_model,
                  order_from="the trained stage-1 model's scores" if order_model is not None
                  else "the retrieval file's scores",
                  retrieval_file=portable(compared.retrieval_file.resolve()),
                  answers_file=portable(compared.answers_file.resolve()),
                  judge_settings=compared.judged["settings"], judge=compared.judged.get("llm"), **extra)
    logger.info("teacher %s on %s: %d triples of %d compared pairs (%s dropped)%s", teacher, split,
                report["pairs_kept"], report["pairs_compared"], report["pairs_dropped"],
                f", threshold |d| >= {report['threshold']:.3f}" if report["threshold"] is not None else "")
    return triples, report
