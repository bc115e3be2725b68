"""Sentences of a synthetic passage that talk about the prompt instead of the subject.

Small LLMs frame their passage with the prompt's words: "This finding provides concrete evidence
for the claim that <query>.", "The question asks ...", "Sure! Here is a passage". Such a sentence
restates the query inside the passage and makes the synthetic text closer to the query than real
passages are (SciFact, prompt v2, Qwen-Coder 1.5B: 34 of 150 positives). :data:`META` is the one
definition of such a sentence: it mentions the query's framing (the/this/your/given [scientific,
original, above, following] question/query/claim/statement/prompt, word-bounded, so "claims",
"claimed" or "patent claims" are not meta), "as an AI" or "the passage below/above", or opens with
chat filler. :func:`is_meta_text` flags a passage holding one (the quality report's
``meta_text``); :func:`clean_record` drops them, whole sentences, when the synthesis records are
built (prompt versions in :data:`syntriever.prompts.DROP_META_SENTENCES`). Text cut by the token
cap is left as it is. A passage made only of meta sentences becomes empty.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, MutableMapping, Sequence
from typing import Any

PASSAGE_FIELDS = ("positive", "negative")
# Per record: meta sentences dropped per passage field. In the summary: per field, passages changed,
# sentences dropped and passages emptied.
REMOVED = "meta_sentences_removed"
META = re.compile(
    r"\b(?:the|this|your|given)\s+(?:(?:scientific|original|above|following)\s+)?"
    r"(?:question|query|claim|statement|prompt)\b"
    r"|^\W*(?:sure|certainly|of course|here is|here's|okay)\b"
    r"|\bas an ai\b|\b(?:the|this) passage (?:below|above)\b",
    re.IGNORECASE,
)
# A sentence ends at ., ! or ? (closing quotes or brackets included) followed by whitespace, and at
# every line break.
_END = re.compile(r"[.!?]*[\"'\u201d\u2019)\]]*[ \t]*\n\s*|[.!?]+[\"'\u201d\u2019)\]]*[ \t]+")
# ... but not after an abbreviation, an initial or a list number ("et al. (2015)", "Dr. Smith",
# "J. Chen", "1. Mice"), nor before a lower-case word.
_NOT_END = re.compile(
    r"(?:\b(?i:et al|e\.g|i\.e|vs|cf|fig|figs|dr|prof|mr|mrs|ms|no|approx|ca|ref|refs|eq|st)"
    r"|(?<![\w.])[A-Z]|^\s*\d+)\.$"
)


def sentences(text: str) -> list[str]:
    """``text`` cut into sentences and lines, each with the whitespace after it, so that they join
    back into ``text``."""
    out, start = [], 0
    for match in _END.finditer(text):
        end = match.end()
        if "\n" not in match.group(0) and (
            _NOT_END.search(text[start:match.start() + 1]) or (end < len(text) and text[end].islower())
        ):
            continue
        out.append(text[start:end])
        start = end
    return out + [text[start:]] if start < len(text) else out


def is_meta_sentence(sentence: str) -> bool:
    """Whether a sentence talks about the prompt (:data:`META`)."""
    return bool(META.search(sentence.strip()))


def is_meta_text(text: str) -> bool:
    """Whether a passage holds a sentence that talks about the prompt or opens with chat filler."""
    return any(is_meta_sentence(s) for s in sentences(text))


def without_meta_sentences(text: str) -> tuple[str, int]:
    """``text`` without its meta sentences (the others kept as written, ends stripped) and how many
    were dropped; ``text`` itself when none was."""
    parts = sentences(text)
    kept = [s for s in parts if not is_meta_sentence(s)]
    return ("".join(kept).strip(), len(parts) - len(kept)) if len(kept) < len(parts) else (text, 0)


def clean_record(record: MutableMapping[str, Any]) -> None:
    """Drop the meta sentences of a synthesis record's passages, counted under :data:`REMOVED`."""
    removed = {}
    for field in PASSAGE_FIELDS:
        record[field], removed[field] = without_meta_sentences(record[field])
    record[REMOVED] = removed


def removal_summary(records: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, int]] | None:
    """Per passage field: passages changed, sentences dropped, passages emptied (None when the
    records were not cleaned)."""
    cleaned = [r for r in records if REMOVED in r]
    if not cleaned:
        return None
    return {f: {"passages_changed": sum(r[REMOVED][f] > 0 for r in cleaned),
                "sentences_dropped": sum(r[REMOVED][f] for r in cleaned),
                "passages_emptied": sum(r[REMOVED][f] > 0 and not r[f] for r in cleaned)}
            for f in PASSAGE_FIELDS}
