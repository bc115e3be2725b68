"""Stage 1, distillation: training examples from labelled pairs plus synthetic data.

One example per (training query, labelled relevant passage) of the train qrels, with the
query's synthetic positive, CoT query and synthetic negative, and the self-verification flag as
the ``label`` column (1 verified, 0 relabelled as a hard negative, -1 unknown). The ablations of
the paper's Table 3 drop columns; with no synthetic data at all it is InfoNCE on labelled pairs
(the paper's fine-tuned baseline).
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from datasets import Dataset
from sentence_transformers import SentenceTransformer

from syntriever.data import BeirDataset, relevant_query_ids
from syntriever.encoders import add_prefix
from syntriever.errors import UserError
from syntriever.jsonl import DataError, read_jsonl_numbered
from syntriever.losses import UNVERIFIED, SyntrieverClusterLoss
from syntriever.names import NEGATIVE_FILTERS, NEGATIVE_SOURCES, stage1_suffix
from syntriever.synthesis_quality import CLOSE_QUERY_COVERAGE, RESTATING_COVERAGE, contains_query, coverage

logger = logging.getLogger(__name__)

VERDICT_LABEL = {"yes": 1, "no": 0, "unparseable": UNVERIFIED, "missing": UNVERIFIED}


@dataclass(frozen=True)
class Stage1Variant:
    """Which parts of the method are on; names the trained model."""

    use_cot: bool = True
    use_synthetic: bool = True
    use_verification: bool = True
    negative_filter: str | None = None  # not in the paper: see keep_negative()
    labelled_weight: float = 0.0  # not in the paper: SyntrieverClusterLoss(labelled_weight=...)
    negative_source: str = "synthetic"  # not in the paper: "related", see related_negatives()
    then_labelled: float = 0.0  # not in the paper: epochs on the labelled pairs alone afterwards

    def __post_init__(self) -> None:
        if self.negative_filter not in (None, *NEGATIVE_FILTERS):
            raise ValueError(f"negative_filter must be one of {NEGATIVE_FILTERS} or None")
        if self.negative_filter and not self.use_synthetic:
            raise ValueError("a negative filter needs the synthetic passages")
        if self._invalid_amount(self.labelled_weight):
            raise UserError("a labelled-pair weight must be a finite number >= 0 and needs synthetic data")
        if self._invalid_amount(self.then_labelled):
            raise UserError("--then-labelled takes a finite number of epochs >= 0 and needs synthetic data "
                            "(without it, train --labelled-only with more --epochs)")
        if self.negative_source not in NEGATIVE_SOURCES or (
                self.negative_source != "synthetic" and not self.use_synthetic):
            raise UserError(f"the negative source must be one of {NEGATIVE_SOURCES} and needs the "
                            "synthetic passages")

    def _invalid_amount(self, value: float) -> bool:
        """Whether an option's amount (a weight, epochs) is not a finite number >= 0, or is set for
        a variant without synthetic data."""
        return not math.isfinite(value) or value < 0 or bool(value and not self.uses_llm_data)

    @property
    def uses_llm_data(self) -> bool:
        return self.use_cot or self.use_synthetic

    @property
    def reads_verification(self) -> bool:
        """Whether training reads the self-verification: its verdicts, or the margins of the judge
        filter (:func:`keep_negative`)."""
        return self.use_verification or self.negative_filter == "judge"

    def suffix(self) -> str:
        """Model-name suffix: ``sft``, ``sft-nocot``, ``sft-nosyn``, ``sft-noverify``, ``labelled``
        (:func:`syntriever.names.stage1_suffix`)."""
        return stage1_suffix(**asdict(self))


def related_negatives(
    train: BeirDataset, synthetic: dict[str, dict[str, Any]], model: SentenceTransformer
) -> dict[str, str]:
    """A hard negative per training query from the data itself (not in the paper): the synthetic
    positive of the most similar other query of the same training split (cosine of the encoder's
    query embeddings), skipping queries that share a relevant passage with it and queries that
    hold half or more of its content words (variations of it). Small LLMs asked for an
    irrelevant passage restate the query; this passage is LLM-written, on a related topic of the
    same collection, and about another query. Queries of other splits (dev) are never used."""
    ids = [q for q in train.qrels if q in synthetic and synthetic[q]["positive"].strip()]
    if len(ids) < 2:
        return {}
    texts = add_prefix(model, [train.queries[q] for q in ids], "query")
    emb = model.encode(texts, convert_to_tensor=True, normalize_embeddings=True, show_progress_bar=False)
    order = (emb @ emb.T).argsort(dim=1, descending=True).tolist()
    relevant = {q: {d for d, s in train.qrels[q].items() if s >= 1} for q in ids}
    out = {}
    for i, qid in enumerate(ids):
        for j in order[i]:
            other = ids[j]
            if (other != qid and not relevant[qid] & relevant[other]
                    and coverage(train.queries[qid], train.queries[other]) < CLOSE_QUERY_COVERAGE):
                out[qid] = synthetic[other]["positive"]
                break
    return out


def keep_negative(record: dict[str, Any], query: str, criterion: str | None) -> bool:
    """Whether the synthetic "irrelevant" passage stays a hard negative of its own query.

    Not in the paper; for small LLMs whose negatives restate the query. ``copies`` drops a
    negative that contains the query verbatim (case and spacing aside); ``coverage`` drops one
    that holds at least 80% of the query's content words (the quality report's "restating");
    ``judge`` drops one the
    verification judge scores at least as relevant as the query's synthetic positive
    (``negative_margin >= verification_margin``, logprobs verification only).
    """
    if criterion is None:
        return True
    if criterion == "copies":
        return not contains_query(query, record["negative"])
    if criterion == "coverage":
        return coverage(query, record["negative"]) < RESTATING_COVERAGE
    margins = (record.get("negative_margin"), record.get("verification_margin"))
    if None in margins:
        raise DataError(
            f"query {record['query_id']}: the judge filter needs negative_margin and "
            "verification_margin (run parse_synthetic.py with --verify-mode logprobs)"
        )
    return margins[0] < margins[1]


def load_synthetic(path: Path) -> dict[str, dict[str, Any]]:
    """Read ``<dataset>_synthetic.jsonl`` into ``{query_id: record}`` (checks every line)."""
    records: dict[str, dict[str, Any]] = {}
    for line, rec in read_jsonl_numbered(path):
        for key in ("query_id", "cot", "positive", "negative", "verdict"):
            if key not in rec:
                raise DataError(f"{path}:{line}: synthetic record lacks {key!r}")
        if rec["verdict"] not in VERDICT_LABEL:
            raise DataError(f"{path}:{line}: unknown verdict {rec['verdict']!r}")
        texts = [rec[key] for key in ("cot", "positive", "negative")]
        if not isinstance(rec["query_id"], str) or not all(isinstance(t, str) for t in texts):
            raise DataError(f"{path}:{line}: query_id, cot, positive and negative must be text")
        if rec["query_id"] in records:
            raise DataError(f"{path}:{line}: query {rec['query_id']!r} has a record already")
        records[rec["query_id"]] = rec
    return records


def only_queries_of(train: BeirDataset, path: Path) -> BeirDataset:
    """``train`` with the labelled pairs of the queries that have a record in the JSONL ``path``
    (any file with ``query_id``s, e.g. a partial synthesis run) and no others: a labelled-only
    baseline, or another run's data, on exactly the queries a partial synthetic run covers."""
    wanted = {str(rec.get("query_id")) for _, rec in read_jsonl_numbered(path)}
    kept = {qid: docs for qid, docs in train.qrels.items() if qid in wanted}
    if not kept:
        raise DataError(f"{path}: none of its query_ids is a query of {train.name}/{train.split}")
    logger.info("training on the %d of %d %s queries that have a record in %s",
                len(kept), len(train.qrels), train.split, path)
    return replace(train, qrels=kept)


def check_coverage(
    train: BeirDataset, synthetic: dict[str, dict[str, Any]], allow_missing: bool, source: str
) -> None:
    """Raise :class:`DataError` (or, with ``allow_missing``, warn) when training queries with a
    relevant passage have no synthetic record."""
    wanted = relevant_query_ids(train.qrels)
    missing = [qid for qid in wanted if qid not in synthetic]
    if not missing:
        return
    pairs = sum(sum(s >= 1 for s in train.qrels[qid].values()) for qid in missing)
    what = (f"{len(missing)} of {len(wanted)} training queries ({pairs} labelled pairs; first: "
            f"{', '.join(missing[:3])}) have no synthetic record in {source}")
    if not allow_missing:
        raise DataError(f"{what}; complete it with `python datasets/parse_synthetic.py {train.name}` "
                        "(same --llm-model and --prompt-version), or train without them with "
                        "--allow-missing-synthetic")
    logger.warning("%s: their pairs are left out (--allow-missing-synthetic)", what)


def build_examples(
    train: BeirDataset,
    model: SentenceTransformer,
    variant: Stage1Variant,
    synthetic: dict[str, dict[str, Any]] | None,
    *,
    allow_missing: bool = False,
    source: str = "the synthetic data",
    passage_queries: list[tuple[str, str]] | None = None,
) -> tuple[Dataset, dict[str, int]]:
    """Columns (query, positive[, synthetic][, cot][, synthetic_negative][, label]) and counts.
    With a negative filter the label is ``[verification flag, keep negative]``. (Not named
    "negative": sentence-transformers warns when a column of that name is not the third.)

    Training queries without a synthetic record (in ``source``) are an error: the synthesis
    did not finish, or ran with ``--limit``. With ``allow_missing`` their pairs are left out
    and counted in a warning. An empty synthetic positive (the LLM wrote nothing, or only sentences
    about the prompt: :mod:`syntriever.meta_text`) is left out of L1 (``empty_synthetic``).

    ``passage_queries`` (not in the paper): (synthetic query, doc id) pairs of
    :mod:`syntriever.passage_queries`, added to the labelled pairs of an InfoNCE-only variant."""
    if variant.uses_llm_data and synthetic is None:
        raise ValueError("this variant needs synthetic data")
    if variant.uses_llm_data:
        check_coverage(train, synthetic or {}, allow_missing, source)
    rows: dict[str, list[Any]] = {"query": [], "positive": []}
    if variant.use_synthetic:
        rows["synthetic"] = []
    if variant.use_cot:
        rows["cot"] = []
    if variant.use_synthetic:
        rows["synthetic_negative"] = []
        rows["label"] = []
    counts = {"pairs": 0, "skipped_no_synthetic": 0, "relabelled": 0, "unknown_verdict": 0,
              "empty_cot": 0, "empty_synthetic": 0, "filtered_negatives": 0, "restating_negatives": 0}
    related = (related_negatives(train, synthetic or {}, model)
               if variant.negative_source == "related" else None)
    for qid, docs in train.qrels.items():
        for doc_id, score in docs.items():
            if score < 1:
                continue
            rec = synthetic.get(qid) if synthetic is not None else None
            if variant.uses_llm_data and rec is None:
                counts["skipped_no_synthetic"] += 1
                continue
            counts["pairs"] += 1
            rows["query"].append(train.queries[qid])
            rows["positive"].append(train.passage_text(doc_id))
            if rec is None:
                continue
            if variant.use_synthetic:
                negative = related.get(qid, "") if related is not None else rec["negative"]
                if not negative.strip():
                    raise DataError(f"{source}: query {qid} has no synthetic negative (the LLM's was "
                                    "empty or only talked about the prompt, or the run had none): "
                                    "train with --negatives related")
                counts["restating_negatives"] += coverage(train.queries[qid], negative) >= RESTATING_COVERAGE
                rows["synthetic"].append(rec["positive"])
                rows["synthetic_negative"].append(negative)
                label = VERDICT_LABEL[rec["verdict"]] if variant.use_verification else 1
                if not rec["positive"].strip():  # empty, or emptied of sentences about the prompt
                    counts["empty_synthetic"] += 1
                    label = UNVERIFIED  # left out of L1, like an unjudged one
                counts["relabelled"] += label == 0
                counts["unknown_verdict"] += label == UNVERIFIED
                if variant.negative_filter:
                    keep = keep_negative({**rec, "negative": negative}, train.queries[qid],
                                         variant.negative_filter)
                    counts["filtered_negatives"] += not keep
                    rows["label"].append([label, int(keep)])
                else:
                    rows["label"].append(label)
            if variant.use_cot:
                cot = rec["cot"].strip()
                if not cot:  # the LLM returned nothing: fall back to the query itself
                    counts["empty_cot"] += 1
                    cot = train.queries[qid]
                rows["cot"].append(cot)
    if passage_queries:
        if variant.uses_llm_data:
            raise UserError("synthetic queries for passages join the labelled pairs of InfoNCE: train them "
                            "with --labelled-only or in the --then-labelled phase")
        for query, doc_id in passage_queries:
            rows["query"].append(query)
            rows["positive"].append(train.passage_text(doc_id))
        counts["passage_query_pairs"] = len(passage_queries)
    if not rows["query"]:
        raise ValueError("no training examples: is the synthetic file for this dataset?")
    rows["query"] = add_prefix(model, rows["query"], "query")
    for column in ("positive", "synthetic", "cot", "synthetic_negative"):
        if column in rows:
            rows[column] = add_prefix(model, rows[column], "document")
    logger.info("stage-1 examples: %s", counts)
    return Dataset.from_dict(rows), counts


def make_loss(
    model: SentenceTransformer, variant: Stage1Variant, scale: float = 20.0
) -> SyntrieverClusterLoss:
    """The cluster loss matching the variant's columns (tau = 1 / scale = 0.05)."""
    return SyntrieverClusterLoss(model, scale=scale, use_cot=variant.use_cot,
                                 use_synthetic=variant.use_synthetic, labelled_weight=variant.labelled_weight)


def synthetic_input(
    dataset: str, variant: Stage1Variant, llm_model: str, prompt_version: str, given: Path | None = None,
) -> Path:
    """The synthetic JSONL to train on: ``given``, else the run's verified file; for a variant
    that reads no verification, the run's unverified one (``parse_synthetic.py
    --skip-verification``) when there is no verified file. Raises :class:`DataError` naming the file
    and the command that makes it."""
    from syntriever.llm.config import LLMConfig
    from syntriever.synthesis import synthetic_path

    make = (f"python datasets/parse_synthetic.py {dataset} --llm-model {llm_model} "
            f"--prompt-version {prompt_version}")
    if given:
        if not given.is_file():
            raise DataError(f"{given}: synthetic data not found; make it with `{make}`")
        return given
    config = LLMConfig(model=llm_model)
    verified = synthetic_path(dataset, config, prompt_version)
    unverified = synthetic_path(dataset, config, prompt_version, verified=False)
    if verified.is_file():
        return verified
    if unverified.is_file():
        if not variant.reads_verification:
            return unverified
        no_verify_helps = not replace(variant, use_verification=False).reads_verification
        raise DataError(f"{verified}: not verified yet ({unverified.name} holds the generations "
                        f"only); verify them with `{make}`"
                        + (", or train with --no-verify" if no_verify_helps else ""))
    if not variant.reads_verification:
        make += " --skip-verification"
    raise DataError(f"{verified}: synthetic data not found; make it with `{make}`")
