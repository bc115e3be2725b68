"""Every LLM prompt of the method, in one place and versioned.

The wording follows the paper (Kim & Baek, NAACL Findings 2025, Sec. 3 and Appendix), as
restated in ``docs/method.md``. Changing any text here must bump :data:`PROMPT_VERSION`: output
folders are named after it, so results made with other prompts are never mixed in or reused.
"""

from __future__ import annotations

PROMPT_VERSION = "v1"

EXPERT_SYSTEM = "You are a subject-matter expert."

COT_USER = "{query}\nLet's think step by step."

POSITIVE_USER = (
    "Write a passage that elaborates on the question below. Do not include any false or "
    "speculative content. Be thorough. Reply with the passage only.\n\nQuestion: {query}"
)

NEGATIVE_USER = (
    "Write a passage that contains plausible but irrelevant context given the question below. "
    "Reply with the passage only, without repeating the question.\n\nQuestion: {query}"
)

VERIFY_USER = (
    "Question: {query}\n\nPassage: {passage}\n\n"
    "Is the passage relevant to the question? Answer yes or no."
)

COMPARE_USER = (
    "Question: {query}\n\nPassage #1: {first}\n\nPassage #2: {second}\n\n"
    "Which passage is more relevant for answering the question? "
    "Answer only Passage #1 or Passage #2."
)


def messages(user: str, system: str | None = None) -> list[dict[str, str]]:
    """Chat messages for one request."""
    out = [{"role": "system", "content": system}] if system else []
    out.append({"role": "user", "content": user})
    return out


def cot(query: str) -> list[dict[str, str]]:
    """Chain-of-thought query augmentation."""
    return messages(COT_USER.format(query=query))


def positive(query: str) -> list[dict[str, str]]:
    """A relevant synthetic passage."""
    return messages(POSITIVE_USER.format(query=query), EXPERT_SYSTEM)


def negative(query: str) -> list[dict[str, str]]:
    """A plausible but irrelevant synthetic passage (hard negative)."""
    return messages(NEGATIVE_USER.format(query=query), EXPERT_SYSTEM)


def verify(query: str, passage: str) -> list[dict[str, str]]:
    """Self-verification: is the passage relevant? (yes/no)."""
    return messages(VERIFY_USER.format(query=query, passage=passage))


def compare(query: str, first: str, second: str) -> list[dict[str, str]]:
    """Pairwise preference: which of two passages is more relevant? (#1/#2)."""
    return messages(COMPARE_USER.format(query=query, first=first, second=second))
