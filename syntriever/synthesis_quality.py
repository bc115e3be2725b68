"""How good is a synthesis run? The quality report stored under ``quality`` in its summary.

Every figure is computed from the run's records alone (``<dataset>_synthetic.jsonl``), so it can be
recomputed from committed files:

- ``negatives_restating_query``: share of synthetic "irrelevant" passages whose content-word
  coverage of the query is >= 0.8 (``share``), and the share containing the query verbatim
  (``verbatim``; case, spacing and end punctuation aside).
- ``negative_queries_close``: v2 only, share of the new queries behind the negatives that still
  hold at least half of the query's content words (variations of it rather than other subjects).
- ``cap_hit``: per generated field, the share that stopped at the token cap (``finish_reason``
  "length"); ``meta_text``: share of passages that talk about the prompt ("The question asks...",
  :data:`syntriever.meta_text.META`), after the synthesis dropped such sentences (prompt v2 on);
  ``meta_text_before_cleaning``: the share before, over the passages the LLM wrote (from the
  records' ``meta_sentences_removed`` counts; the same figure for records never cleaned).
- ``median_words``: median length per field, in words.
- ``verifier_auc``: AUC of the verification margins, synthetic positives against the queries' own
  synthetic negatives (0.5 is chance; ``None`` without log-probability margins).
- ``relabelled_share``: share of judged positives the verification turned into negatives.

Content words are lower-cased alphanumeric tokens outside the English stop-word list of the BM25
baseline (``bm25s``).
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from bm25s.stopwords import STOPWORDS_EN

from syntriever.meta_text import PASSAGE_FIELDS, REMOVED, is_meta_text

RESTATING_COVERAGE = 0.8
# A new query (v2's first negative step) holding at least this share of the query's content words
# is a variation of it rather than another subject.
CLOSE_QUERY_COVERAGE = 0.5
FIELDS = ("cot", "positive", "negative", "negative_query")
_TOKEN = re.compile(r"[a-z0-9]+")
_STOP = frozenset(STOPWORDS_EN)


def content_words(text: str) -> set[str]:
    """Lower-cased alphanumeric tokens that are not stop words."""
    return {t for t in _TOKEN.findall(text.lower()) if t not in _STOP}


def coverage(query: str, passage: str) -> float:
    """Share of the query's content words that occur in ``passage`` (1.0 for a query without any)."""
    words = content_words(query)
    return len(words & content_words(passage)) / len(words) if words else 1.0


def normalise(text: str) -> str:
    """Lower case, single spaces, no surrounding end punctuation (for verbatim matching)."""
    return " ".join(text.lower().split()).strip(" .!?")


def contains_query(query: str, passage: str) -> bool:
    """Whether ``passage`` contains the query verbatim (:func:`normalise` on both)."""
    return normalise(query) in normalise(passage)


def auc(positive: Sequence[float], negative: Sequence[float]) -> float | None:
    """P(a positive margin > a negative one), ties counting half (the Mann-Whitney AUC)."""
    if not positive or not negative:
        return None
    ranked = sorted([(m, 1) for m in positive] + [(m, 0) for m in negative])
    rank_sum, i = 0.0, 0
    while i < len(ranked):  # average ranks over ties
        j = i
        while j < len(ranked) and ranked[j][0] == ranked[i][0]:
            j += 1
        rank_sum += sum(1 for k in range(i, j) if ranked[k][1]) * (i + j + 1) / 2
        i = j
    n_pos, n_neg = len(positive), len(negative)
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def _share(flags: Iterable[bool]) -> float | None:
    values = list(flags)
    return round(sum(values) / len(values), 4) if values else None


def quality_report(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The quality figures of a synthesis run (see the module docstring)."""
    negatives = [r for r in records if r.get("negative")]
    cover = [coverage(r["query"], r["negative"]) for r in negatives]
    fields = [f for f in FIELDS if any(f in r for r in records)]
    finish = [r.get("finish_reasons") or {} for r in records]
    margins = [(r.get("verification_margin"), r.get("negative_margin")) for r in records]
    verdicts = [r.get("verdict") for r in records]
    judged = sum(v in ("yes", "no") for v in verdicts)
    return {
        "records": len(records),
        "negatives_restating_query": {
            "share": _share(c >= RESTATING_COVERAGE for c in cover),
            "verbatim": _share(contains_query(r["query"], r["negative"]) for r in negatives),
            "median_coverage": round(statistics.median(cover), 4) if cover else None,
        },
        "negative_queries_close": _share(coverage(r["query"], r["negative_query"]) >= CLOSE_QUERY_COVERAGE
                                         for r in records if "negative_query" in r),
        "cap_hit": {f: _share(fr[f] == "length" for fr in finish if f in fr) for f in fields},
        "meta_text": {f: _share(is_meta_text(r[f]) for r in records if r.get(f)) for f in PASSAGE_FIELDS},
        "meta_text_before_cleaning": {f: _share(_removed(r, f) > 0 or is_meta_text(r[f])
                                                for r in records if r.get(f) or _removed(r, f))
                                      for f in PASSAGE_FIELDS},
        "median_words": {
            f: statistics.median([len(r[f].split()) for r in records if r.get(f)] or [0]) for f in fields
        },
        "verifier_auc": _round(auc([p for p, _ in margins if p is not None],
                                   [n for _, n in margins if n is not None])),
        "relabelled_share": round(verdicts.count("no") / judged, 4) if judged else None,
    }


def _removed(record: Mapping[str, Any], field: str) -> int:
    """Meta sentences dropped from a record's passage field (0 for records not cleaned)."""
    return record.get(REMOVED, {}).get(field, 0)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)
