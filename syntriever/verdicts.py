"""Reading the stage-2 judge's answers: the choice a text answer names, the log-probability
score at the answer digit, the verdict on a pair in either judge mode (see :mod:`syntriever.judge`),
the position-bias statistics, and the compact form in which answers are committed."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from syntriever.llm.requests import answer_text, generated_tokens, logprob_margin, top_logprobs

ONE, TWO = ("1", "#1"), ("2", "#2")

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
