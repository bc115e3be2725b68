"""Stage-2 teachers on crafted pairs: oracle, identity, judge, confident judge (threshold
calibration), judge + retrieval score; the per-run report; train-nodev keeps dev queries out."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import pytest

from syntriever import data, paths, stage2
from syntriever.data import TRAIN_NODEV, write_qrels
from syntriever.errors import UserError
from syntriever.jsonl import DataError, write_json, write_jsonl
from syntriever.judge import (
    ComparisonSettings,
    answers_path,
    build_preferences,
    comparison_dir,
    preferences_path,
)
from syntriever.llm.config import LLMConfig
from syntriever.names import final_name
from syntriever.stage2 import compared_pairs, rescore_pairs, stage1_split, teacher_preferences, trained_stage1
from syntriever.teachers import (
    CONFIDENT,
    IDENTITY,
    IDENTITY_CHECKABLE,
    JUDGE,
    JUDGE_CHECKABLE,
    JUDGE_RETRIEVER,
    ORACLE,
    ORACLE_FLIP_IDENTITY,
    ORACLE_FLIP_JUDGE,
    ORACLE_JUDGE,
    ORACLE_JUDGE_RETRIEVER,
    ORACLE_LIKELIHOOD_RETRIEVER,
    Pair,
    calibrate_threshold,
    teach,
)
from syntriever.verdicts import Judgement
from tests.helpers import load_benchmark, result

JUDGE_LLM = LLMConfig(backend="online", model="judge-test", base_url="http://127.0.0.1:9/v1")


def pair(qid: str, d: float | None, scores: tuple[float, float] = (0.9, 0.8), *,
         choices: tuple[int, int] = (1, 2)) -> Pair:
    """Pair (<qid>-a, <qid>-b) with judge margin ``d`` for A (None: unparseable)."""
    winner = None if d is None or d == 0 else ("a" if d > 0 else "b")
    verdict = Judgement(winner, "decided" if winner else "unparseable", ["x", "y"], list(choices),
                        {"ab": d, "ba": -d if d is not None else None, "a_over_b": d})
    return Pair(qid, f"question {qid}", (f"{qid}-a", f"{qid}-b"), (f"text {qid} a", f"text {qid} b"),
                (1, 2), scores, verdict)


def labels(**relevant: str) -> dict[str, dict[str, int]]:
    """qrels: query -> its relevant passage(s) among a/b ("a", "b", "ab" or "")."""
    return {q: {f"{q}-{side}": 1 for side in sides} for q, sides in relevant.items()}


def test_oracle_keeps_one_relevant_pairs_and_counts_both_and_neither() -> None:
    pairs = [pair("q1", 1.0), pair("q2", 1.0), pair("q3", 1.0), pair("q4", -1.0)]
    qrels = labels(q1="b", q2="a", q3="ab", q4="")
    triples, report = teach(pairs, ORACLE, qrels)
    assert [(t["query_id"], t["winner_id"], t["loser_id"]) for t in triples] == [
        ("q1", "q1-b", "q1-a"), ("q2", "q2-a", "q2-b")]
    assert report["pairs_dropped"] == {"both_relevant": 1, "neither_relevant": 1}
    assert (report["pairs_compared"], report["pairs_kept"], report["label_checkable_pairs"]) == (4, 2, 2)
    assert report["teacher_accuracy_checkable"] == 1.0 and triples[0]["teacher"] == ORACLE
    assert report["kept_pairs_without_labelled_passage"] == 0


def test_oracle_judge_adds_the_judges_verdicts_where_no_passage_is_labelled() -> None:
    # q1/q2: labels decide (against the judge on q1, without its verdict on q2); q3: both
    # labelled, dropped as by the oracle; q4, q5: neither labelled, the judge decides; q6:
    # neither labelled, the judge unparseable
    pairs = [pair("q1", 1.0), pair("q2", None), pair("q3", 1.0), pair("q4", -1.0), pair("q5", 0.5),
             pair("q6", None)]
    qrels = labels(q1="b", q2="a", q3="ab", q4="", q5="", q6="")
    triples, report = teach(pairs, ORACLE_JUDGE, qrels)
    oracle, _ = teach(pairs, ORACLE, qrels)
    assert [(t["query_id"], t["winner_id"]) for t in triples] == [
        ("q1", "q1-b"), ("q2", "q2-a"), ("q4", "q4-b"), ("q5", "q5-a")]
    assert [t["winner_id"] for t in oracle] == [t["winner_id"] for t in triples[:2]]
    assert report["pairs_dropped"] == {"both_relevant": 1, "judge_unparseable": 1}
    assert report["kept_pairs_without_labelled_passage"] == 2
    assert report["teacher_accuracy_checkable"] == 1.0


def test_oracle_judge_retriever_fills_in_with_margin_plus_gap_where_no_passage_is_labelled() -> None:
    # q1: labelled, the labels decide against judge and order; u1: unlabelled, a small margin for B
    # loses to a large score gap for A; u2: unlabelled, a large margin for B wins over a small gap
    pairs = [pair("q1", 2.0, (0.9, 0.1)), pair("u1", -0.1, (0.9, 0.1)), pair("u2", -2.0, (0.5, 0.45)),
             pair("q2", 1.0)]
    qrels = labels(q1="b", u1="", u2="", q2="ab")
    triples, report = teach(pairs, ORACLE_JUDGE_RETRIEVER, qrels)
    alone, _ = teach(pairs, JUDGE_RETRIEVER, qrels)
    assert [(t["query_id"], t["winner_id"]) for t in triples] == [
        ("q1", "q1-b"), ("u1", "u1-a"), ("u2", "u2-b")]
    # where no passage is labelled it chooses as judge-retriever does over the same pairs
    assert [t["winner_id"] for t in triples[1:]] == [t["winner_id"] for t in alone[1:3]]
    assert report["pairs_dropped"] == {"both_relevant": 1}
    assert report["kept_pairs_without_labelled_passage"] == 2
    assert report["teacher_accuracy_checkable"] == 1.0
    with pytest.raises(ValueError, match="needs the query likelihood's verdicts"):
        teach(pairs, ORACLE_LIKELIHOOD_RETRIEVER, qrels)


def test_checkable_controls_keep_the_oracles_pairs_and_their_own_verdicts(
        caplog: pytest.LogCaptureFixture) -> None:
    # q1: the judge wrong, the order right; q2: both right; q3: neither labelled; q4: both
    pairs = [pair("q1", -1.0, (0.9, 0.5)), pair("q2", -2.0, (0.4, 0.7)), pair("q3", 1.0), pair("q4", 1.0)]
    qrels = labels(q1="a", q2="b", q3="", q4="ab")
    order, order_report = teach(pairs, IDENTITY_CHECKABLE, qrels)
    assert not caplog.records
    judge, judge_report = teach(pairs, JUDGE_CHECKABLE, qrels)
    # less accurate than the order it would overwrite: said, not silent
    assert "right on 50.0% of the 2 label-checkable pairs it keeps" in caplog.text
    assert "order on 100.0%" in caplog.text
    assert [(t["query_id"], t["winner_id"]) for t in judge] == [("q1", "q1-b"), ("q2", "q2-b")]
    assert [(t["query_id"], t["winner_id"]) for t in order] == [("q1", "q1-a"), ("q2", "q2-b")]
    assert judge_report["pairs_dropped"] == order_report["pairs_dropped"] == {"not_label_checkable": 2}
    assert judge_report["teacher_accuracy_checkable"] == 0.5 and judge[0]["teacher"] == JUDGE_CHECKABLE
    assert order_report["teacher_accuracy_checkable"] == 1.0


def test_flipped_oracle_has_the_teachers_error_rate_at_seeded_random_pairs() -> None:
    # 21 checkable pairs: the judge decides 20 and is wrong on the first 5 (25%; q20 unparseable),
    # the order decides all 21 and is wrong on q18, q19 (2/21); 20 unlabelled pairs count in
    # neither rate (over all 41 pairs the rates would give 3 and 1 flips instead of 5 and 2)
    pairs = [pair(f"q{i}", -1.0 if i < 5 else 1.0, (0.4, 0.9) if i in (18, 19) else (0.9, 0.4))
             for i in range(20)] + [pair("q20", None)] + [pair(f"u{i}", -1.0) for i in range(20)]
    qrels = {f"q{i}": {f"q{i}-a": 1} for i in range(21)}
    oracle, _ = teach(pairs, ORACLE, qrels)

    def flipped_queries(triples: list[dict[str, Any]]) -> list[str]:
        return [t["query_id"] for t, o in zip(triples, oracle, strict=True)
                if t["winner_id"] != o["winner_id"]]

    for control, wrong in ((ORACLE_FLIP_JUDGE, 5), (ORACLE_FLIP_IDENTITY, 2)):  # round(rate * 21)
        triples, report = teach(pairs, control, qrels)
        assert len(triples) == len(oracle) == 21 and report["pairs_dropped"] == {"neither_relevant": 20}
        assert len(flipped_queries(triples)) == wrong
        assert report["teacher_accuracy_checkable"] == round(1 - wrong / 21, 4)
        assert teach(pairs, control, qrels)[0] == triples  # seeded: the same pairs every run
    # at random pairs, not where the judge errs
    assert flipped_queries(teach(pairs, ORACLE_FLIP_JUDGE, qrels)[0]) != [p.query_id for p in pairs[:5]]


def test_oracle_flip_percent_turns_round_that_share_of_the_oracles_triples() -> None:
    pairs = [pair(f"q{i}", 1.0) for i in range(50)] + [pair(f"u{i}", 1.0) for i in range(10)]
    qrels = {f"q{i}": {f"q{i}-a": 1} for i in range(50)}
    oracle, _ = teach(pairs, ORACLE, qrels)
    for teacher, wrong in (("oracle-flip-4pct", 2), ("oracle-flip-10pct", 5), ("oracle-flip-50pct", 25)):
        triples, report = teach(pairs, teacher, qrels)
        flipped = [t for t, o in zip(triples, oracle, strict=True) if t["winner_id"] != o["winner_id"]]
        assert len(triples) == 50 and len(flipped) == wrong, teacher  # round(P% of the 50 kept)
        assert report["teacher_accuracy_checkable"] == round(1 - wrong / 50, 4)
        assert report["pairs_dropped"] == {"neither_relevant": 10} and triples[0]["teacher"] == teacher
        assert teach(pairs, teacher, qrels)[0] == triples  # seeded
    with pytest.raises(UserError, match="oracle-flip-<P>pct"):
        teach(pairs, "oracle-flip-4.0pct", qrels)
    with pytest.raises(UserError, match="rounds to no flip"):  # 0.5% of 50: never a silent oracle
        teach(pairs, "oracle-flip-0.5pct", qrels)


def test_identity_follows_the_retrieval_scores_not_the_judge() -> None:
    pairs = [pair("q1", -2.0, (0.9, 0.5)), pair("q2", 2.0, (0.4, 0.7)), pair("q3", 1.0, (0.6, 0.6))]
    triples, report = teach(pairs, IDENTITY, {})
    assert [t["winner_id"] for t in triples] == ["q1-a", "q2-b"]
    assert report["pairs_dropped"] == {"tied_retrieval_scores": 1}


def test_judge_and_report_fields_on_checkable_pairs() -> None:
    pairs = [
        pair("q1", 2.0),             # judge a, order a, truth a: both right
        pair("q2", -1.0),            # judge b (overrides the order), truth b: override right
        pair("q3", -0.5),            # judge b overrides, truth a: override wrong
        pair("q4", 0.3, choices=(1, 1)),  # unlabelled pair, position-biased answers
        pair("q5", None),            # unparseable: the judge drops it
    ]
    qrels = labels(q1="a", q2="b", q3="a", q4="", q5="a")
    triples, report = teach(pairs, JUDGE, qrels)
    assert [t["winner_id"] for t in triples] == ["q1-a", "q2-b", "q3-b", "q4-a"]
    assert report["pairs_dropped"] == {"judge_unparseable": 1}
    assert report["label_checkable_pairs"] == 4 and report["judge_decided_checkable_pairs"] == 3
    assert report["judge_accuracy_checkable"] == round(2 / 3, 4)
    assert report["order_accuracy_on_judged_checkable"] == round(2 / 3, 4)
    assert (report["judge_overrides_order_checkable"], report["judge_override_right_checkable"]) == (2, 1)
    # the teacher (here the judge) overrides the order on q2, q3 (checkable) and nowhere else
    assert report["teacher_overrides_order"] == 2
    assert (report["teacher_overrides_order_checkable"], report["teacher_override_right_checkable"]) == (2, 1)
    assert report["kept_pairs_without_labelled_passage"] == 1
    assert report["position_bias_rate"] == pytest.approx(1 / 5)
    assert report["threshold"] is None and report["teacher"] == JUDGE


def _calibration_pairs() -> tuple[list[Pair], dict[str, dict[str, int]]]:
    """Label-checkable pairs, by |d|: (judge right?, order right?) =
    3.0 (yes, no), 2.0 (yes, yes), 1.0 (no, yes), 0.5 (no, yes), 0.2 (no, yes); the judge is at
    least as accurate as the order on |d| >= 3, 2, 1 (2/3 vs 2/3) and not below; plus an
    unlabelled pair at |d| = 1.5 and one at 0.1."""
    pairs = [pair("c3", 3.0, (0.5, 0.9)), pair("c2", -2.0, (0.5, 0.9)), pair("c1", -1.0),
             pair("c05", -0.5), pair("c02", -0.2), pair("u15", -1.5), pair("u01", 0.1)]
    qrels = labels(c3="a", c2="b", c1="a", c05="a", c02="a", u15="", u01="")
    return pairs, qrels


def test_confident_threshold_is_the_smallest_where_the_judge_matches_the_order() -> None:
    pairs, qrels = _calibration_pairs()
    calibration = calibrate_threshold(pairs, qrels, min_pairs=3)
    assert calibration.threshold == 1.0 and calibration.pairs_at_threshold == 3
    assert calibration.checkable_pairs == 5
    assert calibration.judge_accuracy == calibration.order_accuracy == pytest.approx(2 / 3)
    triples, report = teach(pairs, CONFIDENT, qrels, min_pairs=3)
    assert sorted(t["query_id"] for t in triples) == ["c1", "c2", "c3", "u15"]
    assert report["pairs_dropped"] == {"below_threshold": 3}
    assert report["threshold"] == 1.0 and "smallest |d| threshold" in report["calibration"]["criterion"]
    # fewer than min_pairs at every qualifying threshold: refused, not guessed
    with pytest.raises(UserError, match="judge-confident"):
        calibrate_threshold(pairs, qrels, min_pairs=4)


def test_confident_threshold_never_splits_equal_margins() -> None:
    # two pairs at |d| = 1: the judge is right on one, the order on both. Counting only the
    # first of them the judge would tie the order (2/2); with both it is behind (2/3 < 3/3),
    # so only |d| >= 2 qualifies
    pairs = [pair("a", 2.0), pair("b", 1.0), pair("c", -1.0)]
    qrels = labels(a="a", b="a", c="a")
    assert calibrate_threshold(pairs, qrels, min_pairs=1).threshold == 2.0


def test_judge_plus_retrieval_score_weighs_both_in_units_of_their_spread() -> None:
    # q1: the judge weakly prefers B, the retrieval gap is the largest: A wins
    # q2: the judge strongly prefers B, the gap is small: B wins
    pairs = [pair("q1", -0.1, (0.9, 0.3)), pair("q2", -3.0, (0.80, 0.79)), pair("q3", 1.0, (0.6, 0.5))]
    triples, report = teach(pairs, JUDGE_RETRIEVER, {})
    assert [t["winner_id"] for t in triples] == ["q1-a", "q2-b", "q3-a"]
    assert report["pairs_kept"] == 3 and report["teacher"] == JUDGE_RETRIEVER
    # only q2 goes against the order (A scored more); unlabelled, so no checkable override
    assert report["teacher_overrides_order"] == 1 and report["teacher_overrides_order_checkable"] == 0
    _, identity = teach(pairs, IDENTITY, labels(q2="a"))
    assert identity["teacher_overrides_order"] == identity["teacher_override_right_checkable"] == 0


def test_override_benchmark_counts_net_corrections_on_checkable_pairs() -> None:
    pairs = [pair("q1", 2.0), pair("q2", -1.0), pair("q3", -0.5), pair("q4", -0.4), pair("q5", -3.0)]
    _, report = teach(pairs, JUDGE, labels(q1="a", q2="b", q3="a", q4="b", q5=""))
    row = load_benchmark("teacher_overrides").overrides(report)
    # overrides: q2 (right), q3 (wrong), q4 (right) checkable, q5 unlabelled
    assert row["teacher_overrides_order"] == 4 and row["teacher_overrides_order_checkable"] == 3
    assert row["net_corrections_checkable"] == 2 - 1


def test_vote_benchmark_sums_signals_in_units_of_their_spread() -> None:
    # per pair A minus B; truth: q0 "b", q1 "a", q2 unlabelled, q3 "b"
    signals = {"likelihood": [-3.0, 1.0, 1.0, 0.5], "order": [1.0, 1.0, -1.0, 1.0]}
    rows = load_benchmark("teacher_votes").vote_rows(signals, ["b", "a", None, "b"])
    assert rows["order"] == {"accuracy_checkable": round(1 / 3, 4), "ties_checkable": 0, "overrides_order": 0,
                             "overrides_order_checkable": 0, "net_corrections_checkable": 0}
    # alone the likelihood overrides q0 (right) and q2; with the order (spread 1.68 against 1) only q0
    assert rows["likelihood"]["overrides_order"] == 2 and rows["likelihood"]["net_corrections_checkable"] == 1
    assert rows["likelihood+order"] == {"accuracy_checkable": round(2 / 3, 4), "ties_checkable": 0,
                                        "overrides_order": 1, "overrides_order_checkable": 1,
                                        "net_corrections_checkable": 1}
    assert list(rows)[-1] == "order"  # best first
    # a sum of 0 picks nothing: not right, no override
    tied = load_benchmark("teacher_votes").vote_rows({"order": [1.0, -1.0], "bm25": [0.0, 2.0]}, ["a", "a"])
    assert tied["bm25"] == {"accuracy_checkable": 0.5, "ties_checkable": 1, "overrides_order": 1,
                            "overrides_order_checkable": 1, "net_corrections_checkable": 1}


def test_stage2_names_distinguish_teachers_and_nodev() -> None:
    assert final_name("minilm-sft") == "minilm-final"
    assert final_name("minilm-sft", teacher=ORACLE) == "minilm-final-oracle"
    assert final_name("minilm-sft", "bt", IDENTITY) == "minilm-final-identity-bt"
    assert final_name("minilm-sft", "bt", ORACLE_JUDGE) == "minilm-final-oracle-judge-bt"
    assert final_name("minilm-sft-nodev", nodev=True) == "minilm-final-nodev"
    assert final_name("minilm-labelled-L256-nodev", teacher=CONFIDENT, nodev=True) == (
        "minilm-labelled-L256-final-judge-confident-nodev")


def test_a_missing_stage1_model_gets_its_training_command(toy: dict[str, Any]) -> None:
    with pytest.raises(UserError, match=r"'m-sft' is not a trained .* first: `python train_stage1.py m toy`"):
        trained_stage1("m-sft", "toy")
    with pytest.raises(UserError, match=r"--output-name my-model`"):  # a name of the user's own
        trained_stage1("my-model", "toy")
    with pytest.raises(DataError, match=r"'nosuchdata': no dataset"):  # the dataset named, not the model
        trained_stage1("m-sft", "nosuchdata")


def test_stage1_split_reads_the_card_then_the_name(tmp_path: Path) -> None:
    assert stage1_split("minilm-sft-nodev", tmp_path) == TRAIN_NODEV
    assert stage1_split("minilm-sft", tmp_path) == "train"
    write_json(tmp_path / "syntriever.json", {"split": TRAIN_NODEV})
    assert stage1_split("custom-name", tmp_path) == TRAIN_NODEV


# --------------------------------------------------------------------------------------------
# from committed files: train-nodev keeps the dev queries out
# --------------------------------------------------------------------------------------------


def _answer(cid: str, margin: float) -> dict[str, Any]:
    """An answer "Passage #1" with log P("1") - log P("2") = ``margin`` at the digit."""
    return result(cid, [("Passage #", {"Passage #": -0.01}), ("1", {"1": -0.1, "2": -0.1 - margin})])


@pytest.fixture
def toy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A 4-query dataset (q4 carved into dev), its retrieval file (top 3) and judge answers."""
    folder = tmp_path / "data" / "toy"
    (folder / "qrels").mkdir(parents=True)
    docs = [{"_id": f"d{i}", "title": "", "text": f"passage {i}"} for i in range(6)]
    (folder / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    queries = [{"_id": f"q{i}", "text": f"question {i}"} for i in range(1, 5)]
    (folder / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries))
    train = {"q1": {"d1": 1}, "q2": {"d0": 1}, "q3": {"d2": 1}, "q4": {"d2": 1}}
    write_qrels(folder / "qrels" / "train.tsv", train)
    monkeypatch.setenv("SYNTRIEVER_DATA", str(tmp_path / "data"))
    monkeypatch.setattr(paths, "ROOT", tmp_path / "repo")
    monkeypatch.setattr(paths, "generated_root", lambda: tmp_path / "generated")
    write_qrels(data.carved_dev_path("toy"), {"q4": train["q4"]})
    settings = ComparisonSettings(k=3, judge_mode="logprobs")
    records, results = [], {}
    for q in train:  # every query ranks d0, d1, d2; the judge always prefers the lower doc id
        ids = ["d0", "d1", "d2"]
        records.append({"query_id": q, "query": f"question {q[1]}", "doc_ids": ids,
                        "scores": [0.9, 0.8, 0.7], "texts": []})
        for i, j in ((0, 1), (0, 2), (1, 2)):
            for order, margin in (("ab", 1.0 + i), ("ba", -1.0 - i)):
                cid = f"{q}:{ids[i]}|{ids[j]}:{order}"
                results[cid] = _answer(cid, margin)
    write_jsonl(paths.generated_root() / "toy" / "retrieval-m-sft.jsonl", records)
    folder = comparison_dir("toy", JUDGE_LLM, "m-sft")
    write_jsonl(answers_path(folder, settings), list(results.values()))
    prefs = preferences_path("toy", JUDGE_LLM, "m-sft")
    triples, summary = build_preferences(
        [{**r, "texts": [f"passage {d[1]}" for d in r["doc_ids"]]} for r in records], results,
        JUDGE_LLM, settings, train)
    write_jsonl(prefs, triples)
    write_json(prefs.with_suffix(".summary.json"), summary)
    return {"prefs": prefs, "triples": triples, "summary": summary}


@pytest.mark.parametrize("teacher", [JUDGE, ORACLE, IDENTITY, JUDGE_RETRIEVER, ORACLE_JUDGE])
def test_train_nodev_gives_no_dev_query_any_triple(toy: dict[str, Any], teacher: str) -> None:
    triples, report = teacher_preferences("toy", toy["prefs"], "m-sft", teacher, TRAIN_NODEV)
    assert {t["query_id"] for t in triples} <= {"q1", "q2", "q3"} and triples
    assert report["split"] == TRAIN_NODEV and report["queries"] == 3 and report["pairs_compared"] == 9
    everything, _ = teacher_preferences("toy", toy["prefs"], "m-sft", teacher, "train")
    assert "q4" in {t["query_id"] for t in everything}


def test_prebuilt_compared_pairs_teach_as_the_built_ones(toy: dict[str, Any]) -> None:
    compared = compared_pairs("toy", toy["prefs"], "m-sft", TRAIN_NODEV)
    for teacher in (JUDGE, ORACLE, IDENTITY):
        built = teacher_preferences("toy", toy["prefs"], "m-sft", teacher, TRAIN_NODEV)
        given = teacher_preferences("toy", toy["prefs"], "m-sft", teacher, TRAIN_NODEV, compared=compared)
        assert given == built
    # the given pairs are used as they are: q1's three pairs fewer
    fewer = dataclasses.replace(compared, pairs=[p for p in compared.pairs if p.query_id != "q1"])
    _, report = teacher_preferences("toy", toy["prefs"], "m-sft", IDENTITY, TRAIN_NODEV, compared=fewer)
    assert report["pairs_compared"] == len(compared.pairs) - 3
    with pytest.raises(ValueError, match="made with"):  # pairs of another split or top K are refused
        teacher_preferences("toy", toy["prefs"], "m-sft", IDENTITY, "train", compared=compared)
    with pytest.raises(ValueError, match="made with"):
        teacher_preferences("toy", toy["prefs"], "m-sft", ORACLE, TRAIN_NODEV, top_k=3, compared=compared)


def test_queries_missing_from_the_retrieval_file_are_warned_about(
    toy: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    stage2._warn_missing_records.cache_clear()  # said once per process; this test must see it said
    compared_pairs("toy", toy["prefs"], "m-sft", "train")
    assert "no retrieval record" not in caplog.text
    source = paths.generated_root() / "toy" / "retrieval-m-sft.jsonl"
    source.write_text("".join(source.read_text().splitlines(keepends=True)[:2]))  # q1, q2 only
    compared = compared_pairs("toy", toy["prefs"], "m-sft", "train")
    assert compared.queries == 2
    assert "2 of the 4 queries of split 'train' with a relevant passage have no retrieval" in caplog.text
    compared_pairs("toy", toy["prefs"], "m-sft", "train", top_k=3)  # the same file again: said once
    assert caplog.text.count("have no retrieval record") == 1


def test_oracle_on_train_nodev_uses_only_train_nodev_labels(toy: dict[str, Any]) -> None:
    triples, report = teacher_preferences("toy", toy["prefs"], "m-sft", ORACLE, TRAIN_NODEV)
    # each query has one relevant passage among 3: 2 checkable pairs per query, 1 unlabelled
    assert report["pairs_kept"] == report["label_checkable_pairs"] == 6
    assert report["pairs_dropped"] == {"neither_relevant": 3}
    assert {(t["query_id"], t["winner_id"]) for t in triples} == {
        ("q1", "d1"), ("q2", "d0"), ("q3", "d2")}


def test_judge_teacher_rebuilds_the_preferences_file_and_its_label_check(toy: dict[str, Any]) -> None:
    triples, report = teacher_preferences("toy", toy["prefs"], "m-sft", JUDGE, "train")
    key = ("query_id", "winner_id", "loser_id", "winner", "loser")
    assert [tuple(t[k] for k in key) for t in triples] == [tuple(t[k] for k in key) for t in toy["triples"]]
    # the judge prefers the lower doc id: right on q2 (d0 relevant) twice, wrong elsewhere
    check = toy["summary"]["label_check"]
    assert check["label_checkable_pairs"] == 8 and check["judge_decided_checkable_pairs"] == 8
    assert check["judge_accuracy_checkable"] == 0.25 + 0.125  # q2: 2, q1: (d1 > d2) 1
    assert report["judge_accuracy_checkable"] == check["judge_accuracy_checkable"]


def test_rescore_pairs_gives_the_models_own_cosines(tiny_st_model) -> None:
    texts = [("the cat is on the tree", "water causes fire"), ("a dog and a river", "gene protein cell")]
    pairs = [dataclasses.replace(pair(f"q{i}", 1.0), query="what causes disease", texts=t)
             for i, t in enumerate(texts)]
    rescored = rescore_pairs(pairs, tiny_st_model, precision="fp32")
    for old, new in zip(pairs, rescored, strict=True):
        q, a, b = tiny_st_model.encode([old.query, *old.texts], normalize_embeddings=True)
        assert new.retrieval_scores == pytest.approx((float(q @ a), float(q @ b)), abs=1e-5)
        assert abs(float(q @ a) - float(q @ b)) > 1e-3  # a swap of A and B would show
        assert (new.ids, new.ranks, new.verdict) == (old.ids, old.ranks, old.verdict)


def test_identity_with_an_order_model_teaches_that_models_order(toy: dict[str, Any], tiny_st_model) -> None:
    words = ["cat", "water causes fire", "the sun and the moon"]  # distinct to the tiny model
    corpus = Path(os.environ["SYNTRIEVER_DATA"]) / "toy" / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"_id": f"d{i}", "title": "", "text": w}) + "\n"
                              for i, w in enumerate(words)))
    from_file, report = teacher_preferences("toy", toy["prefs"], "m-sft", IDENTITY, "train")
    assert report["order_from"] == "the retrieval file's scores"
    assert all(t["winner_id"] < t["loser_id"] for t in from_file)  # the file ranks d0 > d1 > d2
    own, report = teacher_preferences("toy", toy["prefs"], "m-sft", IDENTITY, "train",
                                      order_model=tiny_st_model)
    assert report["order_from"] == "the trained stage-1 model's scores"
    query, win, lose = (tiny_st_model.encode([t[k] for t in own], normalize_embeddings=True)
                        for k in ("query", "winner", "loser"))
    gaps = (query * win).sum(axis=1) - (query * lose).sum(axis=1)
    assert len(own) == len(from_file) and (gaps > -1e-2).all()  # bf16 may flip near-ties only
    winners = [{(t["query_id"], t["winner_id"], t["loser_id"]) for t in ts} for ts in (own, from_file)]
    assert winners[0] != winners[1]


def test_missing_answers_is_a_one_line_error_naming_the_command(toy: dict[str, Any]) -> None:
    settings = ComparisonSettings(k=3, judge_mode="logprobs")
    answers_path(toy["prefs"].parent, settings).unlink()
    with pytest.raises(UserError, match="parse_comparison.py m-sft toy"):
        teacher_preferences("toy", toy["prefs"], "m-sft", JUDGE, "train")


def test_a_broken_comparison_summary_names_its_line_and_the_fix(toy: dict[str, Any]) -> None:
    summary = toy["prefs"].with_suffix(".summary.json")
    summary.write_text('{"settings": {"k": 3},\n  "pairs": oops}\n')
    fix = r"summary.json:2: not JSON .*; make it anew with `python stage2/parse_comparison.py m-sft toy"
    with pytest.raises(DataError, match=fix):
        teacher_preferences("toy", toy["prefs"], "m-sft", JUDGE, "train")


# --------------------------------------------------------------------------------------------
# benchmarks/stage2_teachers.py: rows and resuming
# --------------------------------------------------------------------------------------------


def test_teacher_rows_are_paired_against_stage1_and_evaluations_resume(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bench = load_benchmark("stage2_teachers")
    base = {"model": "s1", "num_queries": 4, "created": "t",
            "per_query": {"NDCG@10": {"a": 0.5, "b": 0.5, "c": 0.0, "d": 1.0}}}
    better = {**base, "model": "s2", "per_query": {"NDCG@10": {"a": 0.7, "b": 0.6, "c": 0.1, "d": 1.0}}}
    row = bench.row(better, base)
    assert row["ndcg10"] == 60.0 and row["vs_stage1"]["delta"] == 10.0
    assert row["vs_stage1"]["ci95"][0] > 0 and row["ci95"][0] <= 60.0 <= row["ci95"][1]
    # a result created after the model's card was written is reused; one created before it (another
    # training run of the name, e.g. a committed result) is evaluated again, whatever the file's time
    from syntriever import evaluation

    monkeypatch.setenv("SYNTRIEVER_OUTPUT", str(tmp_path / "out"))
    where = lambda dataset, name, split: tmp_path / f"{name}.json"  # noqa: E731
    monkeypatch.setattr(bench, "result_path", where)
    monkeypatch.setattr(evaluation, "result_path", where)
    calls: list[list[str]] = []
    monkeypatch.setattr(bench, "step", lambda args: calls.append(args))
    card = bench.model_dir("m", "toy") / "syntriever.json"
    write_json(card, {})
    result_file = tmp_path / "m.json"
    write_json(result_file, {**better, "created": "2999-01-01T00:00:00+00:00"})
    assert bench.evaluated("m", "toy", "dev")["model"] == "s2" and calls == []
    write_json(result_file, {**better, "created": "2000-01-01T00:00:00+00:00"})
    os.utime(result_file, (card.stat().st_mtime + 10, card.stat().st_mtime + 10))  # as a checkout leaves it
    bench.evaluated("m", "toy", "dev")
    assert calls == [["evaluate.py", "m", "toy", "--split", "dev"]]


def test_teacher_benchmark_keeps_earlier_rows_and_refuses_other_flags(tmp_path: Path) -> None:
    import argparse

    from syntriever.errors import UserError

    bench = load_benchmark("stage2_teachers")
    report = {"stage1_model": "s1", "split": "dev", "pairs_from": "p", "train_flags": ["--loss", "pl"],
              "stage1": {"ndcg10": 74.8, "ci95": [69.3, 80.2], "result_created": "t1"}}
    out = tmp_path / "report.json"
    assert bench.previous_report(out, report) == {}
    write_json(out, {**report, "teachers": {"oracle": {"ndcg10": 70.0}}})
    evaluated_again = {**report, "stage1": {**report["stage1"], "result_created": "t2"}}
    assert bench.previous_report(out, evaluated_again) == {"oracle": {"ndcg10": 70.0}}  # a rerun keeps it
    with pytest.raises(UserError, match="other flags"):
        bench.previous_report(out, {**report, "train_flags": ["--loss", "bt"]})
    with pytest.raises(UserError, match="stage 1 that scored 74.8 \\(now 74.6"):
        bench.previous_report(out, {**report, "stage1": {**report["stage1"], "ndcg10": 74.6}})
    args = argparse.Namespace(max_seq_length=256, batch_size=None, epochs=None, seed=None, loss="pl",
                              pairs_from="p", model="s1", dataset="toy", top_k=None, llm_model="qwen1.5b")
    prefs = "generated/toy/comparison-v1-qwen1.5b-p/toy_preferences.jsonl"
    card = {"teacher": "judge", "stage2_loss": "pl", "preferences_file": prefs,
            "settings": {"max_seq_length": 256, "batch_size": 32}}
    bench.check_card(card, tmp_path / "card.json", "judge", args)  # matches: reused
    with pytest.raises(UserError, match="seed 42 \\(not 7\\)"):
        bench.check_card({**card, "settings": {**card["settings"], "seed": 42}}, tmp_path / "c.json", "judge",
                         argparse.Namespace(**{**vars(args), "seed": 7}))
    with pytest.raises(UserError, match="max_seq_length 128"):
        bench.check_card({**card, "settings": {"max_seq_length": 128}}, tmp_path / "c.json", "judge", args)
    with pytest.raises(UserError, match="teacher/loss"):
        bench.check_card(card, tmp_path / "c.json", "oracle", args)
    with pytest.raises(UserError, match="top-k None"):  # a judged-pairs model is not a top-5 one
        bench.check_card(card, tmp_path / "c.json", "judge", argparse.Namespace(**{**vars(args), "top_k": 5}))
    with pytest.raises(UserError, match="pairs generated/toy/comparison-v1-qwen1.5b-p-v2"):
        bench.check_card({**card, "preferences_file": prefs.replace("-p/", "-p-v2/")}, tmp_path / "c.json",
                         "judge", args)


def test_override_benchmark_keeps_earlier_rows_and_refuses_other_pairs(tmp_path: Path) -> None:
    from syntriever.errors import UserError

    bench = load_benchmark("teacher_overrides")
    out = tmp_path / "overrides.json"
    assert bench.earlier_rows(out, "train", "m-sft") == {}
    write_json(out, {"split": "train", "pairs_from": "m-sft", "teachers": {"oracle": {"pairs_kept": 3}}})
    assert bench.earlier_rows(out, "train", "m-sft") == {"oracle": {"pairs_kept": 3}}
    with pytest.raises(UserError, match="other flags \\(split=train, pairs_from=m-sft\\); move it away"):
        bench.earlier_rows(out, "train", "other")
