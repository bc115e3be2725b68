"""Stage-2 teachers: who decides, over the pairs the judge compared, which passage wins.

The pairs are the judge's (:func:`syntriever.judge.judged_pairs`: the top ``k`` of each training
query in the retrieval file, every pair the judge answered). A teacher turns each into a triple
(query, winner, loser) or drops it:

- ``judge`` (the paper): the judge's verdict, the sign of its order-averaged log-prob margin d;
- ``judge-confident``: the judge's verdict on the pairs with ``|d| >= t`` only, ``t`` calibrated
  on the labelled pairs of the training queries (:func:`calibrate_threshold`), never fixed;
- ``oracle``: the training qrels; a labelled-relevant passage beats an unlabelled one, pairs
  where both or neither are labelled are dropped (and counted);
- ``identity``: the retrieval order (the higher retrieval score wins; ties dropped), the control
  that teaches the stage-1 order back (pairs of another model are first re-scored by the stage-1
  model being trained: :func:`syntriever.stage2.rescore_pairs`);
- ``judge-retriever``: the sign of ``d / sd(d) + gap / sd(gap)``, the judge's margin and the
  retrieval score gap (A's score minus B's, A ranked higher), each in units of its spread over
  the pairs (not centred: zero stays "no preference");
- ``oracle-judge``: the training qrels where they decide (the oracle's triples), the judge's
  verdict where neither passage is labelled (both labelled: dropped, as by the oracle). Its
  triples are the oracle's plus the judge's on the pairs labels cannot check, so oracle against
  oracle-judge measures what the judge adds where labels say nothing; ``oracle-judge-retriever``
  likewise with judge-retriever's choice where neither passage is labelled;
- ``judge-checkable``, ``identity-checkable``: the judge, the retrieval order, on the oracle's
  pairs only (exactly one passage labelled relevant), each pair decided by that teacher;
- ``oracle-flip-judge``, ``oracle-flip-identity``: the oracle with a share of its triples turned
  round at seeded random pairs, the share the judge's (the order's) error rate on those pairs:
  the same accuracy as that teacher, errors placed by chance instead of by the teacher;
- ``judge-retriever-checkable``: judge-retriever on the oracle's pairs only;
- ``likelihood``, ``likelihood-retriever``, ``likelihood-checkable``,
  ``likelihood-retriever-checkable``: ``judge``, ``judge-retriever``, ``judge-checkable``,
  ``judge-retriever-checkable`` (and ``oracle-likelihood-retriever``: ``oracle-judge-retriever``)
  on the query likelihood's verdicts instead of the pairwise
  judge's (:mod:`syntriever.likelihood`; the caller replaces the verdicts, :data:`LIKELIHOOD_OF`);
- ``oracle-flip-<P>pct`` (e.g. ``oracle-flip-4pct``): the oracle with round(P% of its triples)
  turned round at seeded random pairs: a teacher of a chosen accuracy (about 100 - P% on the
  checkable pairs). Every flip control draws its pairs with ``random.Random(FLIP_SEED).sample``,
  so the pairs two shares flip are not nested.
  Controls, not teachers to use: with the ``-checkable`` ones they tell whether a teacher's
  accuracy or where its errors fall decides what stage 2 learns, and how accurate a teacher must
  be to gain anything.

:func:`teacher_report` says per run how many pairs were kept and why others were dropped, how
often the judge and the retrieval order are right on the *label-checkable* pairs (exactly one
passage labelled relevant), the teacher's own accuracy there, and the judge's position bias.
"""

from __future__ import annotations

import logging
import math
import random
import statistics
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from syntriever.errors import UserError
from syntriever.names import TEACHERS, flip_percent, is_teacher, teacher_choices
from syntriever.verdicts import Judgement, order_stats

logger = logging.getLogger(__name__)

(JUDGE, CONFIDENT, ORACLE, IDENTITY, JUDGE_RETRIEVER, ORACLE_JUDGE, JUDGE_CHECKABLE, IDENTITY_CHECKABLE,
 ORACLE_FLIP_JUDGE, ORACLE_FLIP_IDENTITY, JUDGE_RETRIEVER_CHECKABLE, LIKELIHOOD, LIKELIHOOD_RETRIEVER,
 LIKELIHOOD_CHECKABLE, LIKELIHOOD_RETRIEVER_CHECKABLE, ORACLE_JUDGE_RETRIEVER,
 ORACLE_LIKELIHOOD_RETRIEVER) = TEACHERS  # see names.py
# the controls' underlying teacher: on the checkable pairs only, or the oracle with flips
CONTROL_OF = {JUDGE_CHECKABLE: JUDGE, IDENTITY_CHECKABLE: IDENTITY,
              JUDGE_RETRIEVER_CHECKABLE: JUDGE_RETRIEVER,
              ORACLE_FLIP_JUDGE: ORACLE, ORACLE_FLIP_IDENTITY: ORACLE}
CHECKABLE_ONLY = (JUDGE_CHECKABLE, IDENTITY_CHECKABLE, JUDGE_RETRIEVER_CHECKABLE)
# the judge's teachers on the query likelihood's verdicts (syntriever.likelihood.with_likelihood)
LIKELIHOOD_OF = {LIKELIHOOD: JUDGE, LIKELIHOOD_RETRIEVER: JUDGE_RETRIEVER,
                 LIKELIHOOD_CHECKABLE: JUDGE_CHECKABLE,
                 LIKELIHOOD_RETRIEVER_CHECKABLE: JUDGE_RETRIEVER_CHECKABLE,
                 ORACLE_LIKELIHOOD_RETRIEVER: ORACLE_JUDGE_RETRIEVER}
# the oracle's triples where labels decide, this teacher's where neither passage is labelled
FILL_IN = {ORACLE_JUDGE: JUDGE, ORACLE_JUDGE_RETRIEVER: JUDGE_RETRIEVER}
FLIP_RATE_OF = {ORACLE_FLIP_JUDGE: JUDGE, ORACLE_FLIP_IDENTITY: IDENTITY}
FLIP_SEED = 0
# the confident judge's threshold rule (recorded in every report that uses it)
CRITERION = ("smallest |d| threshold t such that, on the label-checkable training pairs with "
             "|d| >= t (at least min_pairs of them), the judge's accuracy is at least the "
             "retrieval order's accuracy on the same pairs")
MIN_CALIBRATION_PAIRS = 50  # below this many checkable pairs an accuracy is too noisy to compare


@dataclass
class Pair:
    """One compared pair of a query: A (higher-ranked, rank ``rank_a``) and B."""

    query_id: str
    query: str
    ids: tuple[str, str]
    texts: tuple[str, str]
    ranks: tuple[int, int]  # 1-based ranks in the retrieval file
    retrieval_scores: tuple[float, float]
    verdict: Judgement

    @property
    def margin(self) -> float | None:
        """The judge's order-averaged preference for A (log-prob mode), else None."""
        return self.verdict.scores.get("a_over_b")

    def relevant(self, qrels: Mapping[str, Mapping[str, int]]) -> tuple[bool, bool]:
        labels = qrels.get(self.query_id, {})
        return labels.get(self.ids[0], 0) >= 1, labels.get(self.ids[1], 0) >= 1

    def checkable_truth(self, qrels: Mapping[str, Mapping[str, int]]) -> str | None:
        """"a"/"b": the only labelled-relevant passage of the pair; None when both or neither."""
        rel_a, rel_b = self.relevant(qrels)
        return None if rel_a == rel_b else ("a" if rel_a else "b")

    def order_winner(self) -> str | None:
        """The retrieval order's choice: the higher score ("a" when A scored more)."""
        s_a, s_b = self.retrieval_scores
        return None if s_a == s_b else ("a" if s_a > s_b else "b")

    def triple(self, winner: str, teacher: str) -> dict[str, Any]:
        """The stage-2 triple (query, winner, loser) with the judge's answers for reference."""
        win, lose = (0, 1) if winner == "a" else (1, 0)
        return {
            "query_id": self.query_id, "query": self.query, "winner_id": self.ids[win],
            "loser_id": self.ids[lose], "winner": self.texts[win], "loser": self.texts[lose],
            "winner_rank": self.ranks[win], "loser_rank": self.ranks[lose], "teacher": teacher,
            "raw_answers": self.verdict.answers, "scores": self.verdict.scores,
        }


@dataclass
class Calibration:
    """The confident judge's threshold and the accuracies that chose it."""

    threshold: float
    checkable_pairs: int  # label-checkable pairs with a judge margin
    pairs_at_threshold: int  # of them, |d| >= threshold
    judge_accuracy: float
    order_accuracy: float
    criterion: str = CRITERION
    min_pairs: int = MIN_CALIBRATION_PAIRS


def calibrate_threshold(
    pairs: Sequence[Pair], qrels: Mapping[str, Mapping[str, int]], min_pairs: int = MIN_CALIBRATION_PAIRS
) -> Calibration:
    """The threshold of :data:`CRITERION`: scan the label-checkable pairs by decreasing |d| and
    keep the lowest |d| at which the judge is at least as accurate as the retrieval order on the
    pairs at or above it. Raises :class:`UserError` when no threshold qualifies."""
    rows = []
    for pair in pairs:
        truth, d = pair.checkable_truth(qrels), pair.margin
        if truth is None or d is None or d == 0:
            continue
        rows.append((abs(d), (d > 0) == (truth == "a"), pair.order_winner() == truth))
    rows.sort(key=lambda r: -r[0])
    best = None
    judge_right = order_right = 0
    for count, (size, judge_ok, order_ok) in enumerate(rows, start=1):
        judge_right += judge_ok
        order_right += order_ok
        last_of_its_value = count == len(rows) or rows[count][0] != size
        if count >= min_pairs and last_of_its_value and judge_right >= order_right:
            best = Calibration(size, len(rows), count, judge_right / count, order_right / count,
                               min_pairs=min_pairs)
    if best is None:
        raise UserError(
            f"judge-confident: on none of the {len(rows)} label-checkable pairs' |d| thresholds "
            f"(with at least {min_pairs} pairs) is the judge as accurate as the retrieval order; "
            "use --teacher judge or oracle"
        )
    return best


def spread(values: Sequence[float]) -> float:
    """Root mean square of ``values`` (their spread around zero), 1.0 when it is zero."""
    rms = math.sqrt(math.fsum(v * v for v in values) / len(values)) if values else 0.0
    return rms or 1.0


def teacher_winners(
    pairs: Sequence[Pair], teacher: str, qrels: Mapping[str, Mapping[str, int]],
    calibration: Calibration | None = None,
) -> tuple[list[str | None], Counter]:
    """Per pair, the teacher's winner ("a", "b") or None, and why pairs were dropped."""
    if not is_teacher(teacher):
        raise UserError(f"unknown teacher {teacher!r}; use one of {teacher_choices()}")
    dropped: Counter = Counter()
    winners: list[str | None] = []
    percent = flip_percent(teacher)
    if teacher in LIKELIHOOD_OF and any(
            p.verdict.winner and "loglik_a" not in p.verdict.scores for p in pairs):
        raise ValueError(f"teacher {teacher} needs the query likelihood's verdicts "
                         "(syntriever.likelihood.with_likelihood), not the judge's")
    control = LIKELIHOOD_OF.get(teacher, teacher)
    teacher = ORACLE if percent else CONTROL_OF.get(control, control)
    fill = FILL_IN.get(teacher)
    rule = fill or teacher  # what decides the pairs the labels do not (all pairs for the others)
    if rule == JUDGE_RETRIEVER:
        scored = [p for p in pairs if p.margin is not None]
        d_scale = spread([p.margin for p in scored])
        gap_scale = spread([p.retrieval_scores[0] - p.retrieval_scores[1] for p in scored])
    for pair in pairs:
        winner: str | None
        labelled = pair.relevant(qrels)
        if control in CHECKABLE_ONLY and pair.checkable_truth(qrels) is None:
            winner = None
            dropped["not_label_checkable"] += 1
        elif teacher == ORACLE or (fill and any(labelled)):
            winner = pair.checkable_truth(qrels)
            if winner is None:
                dropped["both_relevant" if labelled[0] else "neither_relevant"] += 1
        elif rule == IDENTITY:
            winner = pair.order_winner()
            if winner is None:
                dropped["tied_retrieval_scores"] += 1
        elif rule == JUDGE_RETRIEVER:
            if pair.margin is None:
                winner = None
                dropped[f"judge_{pair.verdict.status}"] += 1
            else:
                gap = pair.retrieval_scores[0] - pair.retrieval_scores[1]
                combined = pair.margin / d_scale + gap / gap_scale
                winner = None if combined == 0 else ("a" if combined > 0 else "b")
                if winner is None:
                    dropped["tied_combined_score"] += 1
        else:  # judge, judge-confident, oracle-judge on the pairs without a labelled passage
            winner = pair.verdict.winner
            if winner is None:
                dropped[f"judge_{pair.verdict.status}"] += 1
            elif teacher == CONFIDENT:
                if calibration is None:
                    raise ValueError("judge-confident needs a calibration")
                if pair.margin is None or abs(pair.margin) < calibration.threshold:
                    winner = None
                    dropped["below_threshold"] += 1
        winners.append(winner)
    share = error_rate(pairs, FLIP_RATE_OF[control], qrels) if control in FLIP_RATE_OF else (
        (percent or 0.0) / 100)
    if share:
        kept = [i for i, w in enumerate(winners) if w is not None]
        flips = round(share * len(kept))
        if percent and not flips:
            raise UserError(f"{control}: {percent:g}% of the {len(kept)} triples the oracle keeps "
                            "rounds to no flip; use a larger P")
        for i in random.Random(FLIP_SEED).sample(kept, flips):
            winners[i] = "b" if winners[i] == "a" else "a"
    return winners, dropped


def checkable_record(
    pairs: Sequence[Pair], teacher: str, qrels: Mapping[str, Mapping[str, int]]
) -> tuple[int, int]:
    """(right, decided): of the label-checkable pairs the judge (``teacher`` JUDGE) or the
    retrieval order (IDENTITY) decides, how many it gets right, and how many it decides."""
    if teacher not in (JUDGE, IDENTITY):
        raise ValueError(f"a checkable record is the judge's or the retrieval order's, not {teacher!r}'s")
    choices = [(p.verdict.winner if teacher == JUDGE else p.order_winner(), p.checkable_truth(qrels))
               for p in pairs]
    decided = [(w, t) for w, t in choices if t is not None and w is not None]
    return sum(w == t for w, t in decided), len(decided)


def error_rate(pairs: Sequence[Pair], teacher: str, qrels: Mapping[str, Mapping[str, int]]) -> float:
    """The share of the label-checkable pairs the judge (``teacher`` JUDGE) or the retrieval order
    (IDENTITY) gets wrong, over the pairs it decides; 0.0 when it decides none."""
    right, decided = checkable_record(pairs, teacher, qrels)
    return (decided - right) / decided if decided else 0.0


def _share(hits: int, total: int) -> float | None:
    return round(hits / total, 4) if total else None


def _overrides(pair: Pair, winner: str | None) -> bool:
    """The teacher kept ``pair`` with the winner the retrieval order (untied) did not pick."""
    order = pair.order_winner()
    return winner is not None and order is not None and winner != order


def teacher_report(
    pairs: Sequence[Pair], winners: Sequence[str | None], teacher: str,
    qrels: Mapping[str, Mapping[str, int]], dropped: Mapping[str, int],
    calibration: Calibration | None = None,
) -> dict[str, Any]:
    """Counts and accuracies of one teacher's run (see the module docstring)."""
    checkable = [(p, w, p.checkable_truth(qrels)) for p, w in zip(pairs, winners, strict=True)]
    checkable = [(p, w, t) for p, w, t in checkable if t is not None]
    judged = [(p, t) for p, _, t in checkable if p.verdict.winner is not None]
    kept = [(p, w, t) for p, w, t in checkable if w is not None]
    overridden = [w == t for p, w, t in kept if _overrides(p, w)]  # right or not, per checkable override
    both_unlabelled = sum(
        w is not None and not any(p.relevant(qrels)) for p, w in zip(pairs, winners, strict=True))
    kept_count = sum(w is not None for w in winners)
    judge_right, judge_decided = checkable_record(pairs, JUDGE, qrels)  # the pairs of ``judged``
    return {
        "teacher": teacher,
        "pairs_compared": len(pairs),
        "pairs_kept": kept_count,
        "pairs_dropped": dict(dropped),
        "queries_kept": len({p.query_id for p, w in zip(pairs, winners, strict=True) if w is not None}),
        "kept_pairs_without_labelled_passage": both_unlabelled,
        "label_checkable_pairs": len(checkable),
        "judge_decided_checkable_pairs": judge_decided,
        "judge_accuracy_checkable": _share(judge_right, judge_decided),
        "order_accuracy_on_judged_checkable": _share(
            sum(p.order_winner() == t for p, t in judged), len(judged)),
        "teacher_kept_checkable_pairs": len(kept),
        "teacher_accuracy_checkable": _share(sum(w == t for _, w, t in kept), len(kept)),
        "order_accuracy_on_kept_checkable": _share(sum(p.order_winner() == t for p, _, t in kept), len(kept)),
        # where the teacher's winner goes against the retrieval order's (tied scores: no order to go
        # against): what stage 2 can learn beyond the order (the identity teacher teaches none of
        # it), and how often labels say it is right there
        "teacher_overrides_order": sum(_overrides(p, w) for p, w in zip(pairs, winners, strict=True)),
        "teacher_overrides_order_checkable": len(overridden),
        "teacher_override_right_checkable": sum(overridden),
        "judge_overrides_order_checkable": sum(
            p.verdict.winner != p.order_winner() for p, _ in judged),
        "judge_override_right_checkable": sum(
            p.verdict.winner != p.order_winner() and p.verdict.winner == t for p, t in judged),
        "position_bias_rate": order_stats([p.verdict for p in pairs])["position_bias_rate"],
        "threshold": calibration.threshold if calibration else None,
        "calibration": vars(calibration) if calibration else None,
        "judge_margin_mean_abs": (
            statistics.fmean(abs(p.margin) for p in pairs if p.margin is not None)
            if any(p.margin is not None for p in pairs) else None),
    }


def teach(
    pairs: Sequence[Pair], teacher: str, qrels: Mapping[str, Mapping[str, int]],
    min_pairs: int = MIN_CALIBRATION_PAIRS,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The teacher's triples over ``pairs`` and its report; ``qrels`` are the training
    queries' own labels (the oracle's teaching and the confident judge's calibration)."""
    calibration = calibrate_threshold(pairs, qrels, min_pairs) if teacher == CONFIDENT else None
    winners, dropped = teacher_winners(pairs, teacher, qrels, calibration)
    triples = [p.triple(w, teacher) for p, w in zip(pairs, winners, strict=True) if w is not None]
    report = teacher_report(pairs, winners, teacher, qrels, dropped, calibration)
    own, order = report["teacher_accuracy_checkable"], report["order_accuracy_on_kept_checkable"]
    if own is not None and order is not None and own < order:
        logger.warning(
            "teacher %s is right on %.1f%% of the %d label-checkable pairs it keeps, the retrieval "
            "order on %.1f%%: trained on, it would un-teach pairs the retriever already orders "
            "right (how accurate a teacher must be: results/scifact/dev/DECISIONS.md)", teacher,
            100 * own, report["teacher_kept_checkable_pairs"], 100 * order)
    return triples, report
