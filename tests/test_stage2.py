"""Stage 2: retrieval file, comparison requests, judging, preference triples and training.

Everything runs on hand-built inputs and the tiny offline model; only the last test (marked
``llm``) talks to the real embedded llama.cpp server, with 4 short requests.
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any, NoReturn

import pytest
from sentence_transformers import SentenceTransformer

from syntriever import paths
from syntriever.cli import add_train_args, settings_from_args
from syntriever.jsonl import read_jsonl, write_json, write_jsonl
from syntriever.judge import (
    ComparisonSettings,
    answers_path,
    attach_texts,
    build_preferences,
    candidate_pairs,
    comparison_requests,
    pair_id,
    preferences_path,
    run_comparisons,
    truncate,
)
from syntriever.llm.config import LLMConfig
from syntriever.llm.requests import answer_text, result_line, usage
from syntriever.llm.runner import IncompleteRun, Sent
from syntriever.retrieval import load_retrieval, retrieve_training_queries
from syntriever.stage2 import build_preference_examples, load_preferences, order_model_for
from syntriever.training import TrainSettings, warmup_warning
from syntriever.verdicts import (
    Judgement,
    answer_position,
    choice_score,
    compact_answer,
    judge_logprobs,
    judge_text,
    order_stats,
    parse_choice,
)
from tests.helpers import load_benchmark, load_script, result

JUDGE = LLMConfig(backend="online", model="judge-test", base_url="http://127.0.0.1:9/v1")
OFFLINE = replace(JUDGE, max_retries=0)  # unreachable, gives up at once: only committed answers count


def retrieval_record(qid: str, n: int = 5, text_len: int = 40) -> dict[str, Any]:
    """A retrieval line with ``n`` ranked passages d<qid>-<rank> whose texts are distinct."""
    ids = [f"d{qid}-{r}" for r in range(1, n + 1)]
    return {
        "query_id": qid, "query": f"question {qid}?", "doc_ids": ids,
        "scores": [1.0 - 0.1 * r for r in range(n)],
        "texts": [f"passage {d} " + "x" * text_len for d in ids],
    }


def answer(cid: str, digit: str, lp1: float, lp2: float, prefix: bool = True) -> dict[str, Any]:
    """"Passage #<digit>" (or a bare digit) with log P(1) = lp1 and log P(2) = lp2 at the digit."""
    lead = [("Pass", {"Pass": -0.01, "The": -5.0}), ("age", {"age": -0.01}), (" #", {" #": -0.02})]
    return result(cid, ([*lead] if prefix else []) + [(digit, {"1": lp1, "2": lp2, "3": -9.0})])


def text_answer(cid: str, text: str) -> dict[str, Any]:
    return result_line(cid, {"choices": [{"index": 0, "message": {"role": "assistant", "content": text}}],
                             "usage": {"prompt_tokens": 50, "completion_tokens": 3}})


# --------------------------------------------------------------------------------------------
# pairs and requests
# --------------------------------------------------------------------------------------------


def test_candidate_pairs_are_all_combinations_in_rank_order() -> None:
    pairs = candidate_pairs(5)
    assert len(pairs) == math.comb(5, 2) == 10
    assert pairs[:5] == [(0, 1), (0, 2), (0, 3), (0, 4), (1, 2)]
    assert all(i < j for i, j in pairs)
    assert candidate_pairs(5, 3) == [(0, 1), (0, 2), (0, 3)]
    assert candidate_pairs(2) == [(0, 1)]


def test_text_requests_one_per_pair_higher_ranked_first() -> None:
    rec = retrieval_record("q1")
    reqs = comparison_requests([rec], JUDGE, ComparisonSettings(k=5, judge_mode="text"))
    assert len(reqs) == 10
    first = reqs[0]
    assert first["custom_id"] == "q1:dq1-1|dq1-2:ab" == pair_id("q1", "dq1-1", "dq1-2", "ab")
    prompt = first["body"]["messages"][-1]["content"]
    assert prompt.index("passage dq1-1") < prompt.index("passage dq1-2")
    assert first["body"]["temperature"] == 0.0 and "logprobs" not in first["body"]
    assert all(r["custom_id"].endswith(":ab") for r in reqs)


def test_logprob_requests_both_orders_grouped_by_shared_prefix() -> None:
    records = [retrieval_record("q1", 3), retrieval_record("q2", 3)]
    reqs = comparison_requests(records, JUDGE, ComparisonSettings(k=3, judge_mode="logprobs"))
    assert len(reqs) == 2 * 2 * math.comb(3, 2)
    assert {r["custom_id"].rsplit(":", 1)[1] for r in reqs} == {"ab", "ba"}
    assert all(r["body"]["logprobs"] and r["body"]["top_logprobs"] == 10 for r in reqs)
    assert all(r["body"]["temperature"] == 0.0 and r["body"]["max_tokens"] == 6 for r in reqs)
    # the prompt up to passage #2 is the shared prefix; each prefix forms one contiguous run
    prefixes = [r["body"]["messages"][-1]["content"].split("Passage #2")[0] for r in reqs]
    runs = [p for i, p in enumerate(prefixes) if i == 0 or p != prefixes[i - 1]]
    assert len(runs) == len(set(runs)) == 2 * 3  # one run per (query, passage #1)
    q1 = [r["custom_id"] for r in reqs[:6]]
    assert q1 == ["q1:dq1-1|dq1-2:ab", "q1:dq1-1|dq1-3:ab", "q1:dq1-1|dq1-2:ba",
                  "q1:dq1-2|dq1-3:ab", "q1:dq1-1|dq1-3:ba", "q1:dq1-2|dq1-3:ba"]


def test_pairs_limit_and_truncation_apply_to_requests() -> None:
    rec = retrieval_record("q1", 5, text_len=500)
    settings = ComparisonSettings(k=5, pairs=2, judge_mode="logprobs", max_chars=100)
    reqs = comparison_requests([rec], JUDGE, settings)
    assert len(reqs) == 4
    assert settings.tag() == "comparison-logprobs-chars100"
    prompt = reqs[0]["body"]["messages"][-1]["content"]
    assert "x" * 200 not in prompt and " ..." in prompt
    assert truncate("word " * 100, 52) == " ".join(["word"] * 10) + " ..."  # at a word boundary
    assert truncate("short", 12) == "short" and truncate("long text", None) == "long text"


def test_agreeing_only_needs_both_orders() -> None:
    from syntriever.errors import UserError

    with pytest.raises(UserError, match="--agreeing-only needs both orders"):
        ComparisonSettings(k=3, judge_mode="text", agreeing_only=True)
    with pytest.raises(UserError, match="--compare-top-k must be at least 2"):
        ComparisonSettings(k=1, judge_mode="logprobs")
    with pytest.raises(UserError, match="--pairs must be at least 1"):
        ComparisonSettings(k=3, judge_mode="logprobs", pairs=0)
    assert ComparisonSettings(k=3, judge_mode="logprobs", agreeing_only=True).both_orders


def test_warmup_longer_than_training_is_reported() -> None:
    # paper stage 2 (batch 100, 1 epoch, 1000 warm-up steps) on SciFact-size preferences
    paper = TrainSettings(epochs=1, batch_size=100, warmup_steps=1000)
    warning = warmup_warning(paper, 2_427)
    assert warning is not None and "~25 training steps" in warning
    assert warmup_warning(paper, 2_427 * 50) is None  # MS MARCO-size: warm-up is a small share
    assert warmup_warning(replace(paper, warmup_ratio=0.1), 2_427) is None
    assert warmup_warning(paper, 200_000, world_size=4) is not None  # 500 steps on 4 processes


def test_too_few_stored_texts_is_an_error() -> None:
    rec = retrieval_record("q1", 5)
    rec["texts"] = rec["texts"][:3]
    with pytest.raises(ValueError, match="holds 3 passage texts, the comparisons need 5"):
        comparison_requests([rec], JUDGE, ComparisonSettings(k=5))


# --------------------------------------------------------------------------------------------
# text answers
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text, choice", [
    ("Passage #1", 1), ("Passage #2", 2), ("passage #2.", 2), ("**Passage #1**", 1),
    ("Passage 2", 2), ("#1", 1), (" #2", 2), ("1", 1), ("2.", 2), ("Passage #1 is more relevant.", 1),
    ("Passage #12", None), ("#3", None), ("Neither passage", None), ("Both", None), ("", None),
    ("The second passage", None), ("I think Passage #2", None), ("Passage", None),
])
def test_parse_choice(text: str, choice: int | None) -> None:
    assert parse_choice(text) == choice


def test_text_judge_counts_unparseable_and_never_reads_it_as_two() -> None:
    records = [retrieval_record("q1", 3)]
    answers = {"q1:dq1-1|dq1-2:ab": "Passage #2", "q1:dq1-1|dq1-3:ab": "I cannot decide.",
               "q1:dq1-2|dq1-3:ab": "Passage #1"}
    results = {cid: text_answer(cid, text) for cid, text in answers.items()}
    settings = ComparisonSettings(k=3, judge_mode="text")
    triples, summary = build_preferences(records, results, JUDGE, settings)
    assert [(t["winner_id"], t["loser_id"]) for t in triples] == [("dq1-2", "dq1-1"), ("dq1-2", "dq1-3")]
    assert summary["pairs"] == 3 and summary["decided"] == 2 and summary["unparseable"] == 1
    assert summary["text_answers"] == {"1": 1, "2": 1, "unparseable": 1}
    assert summary["position_bias_rate"] is None  # one order only
    assert summary["higher_ranked_wins_share"] == 0.5
    assert judge_text(None).status == "missing"
    assert judge_text(text_answer("x", "no idea")).winner is None


# --------------------------------------------------------------------------------------------
# log-probability judge
# --------------------------------------------------------------------------------------------


def test_choice_score_reads_the_digit_position_not_the_first_token() -> None:
    res = answer("c", "1", -0.1, -2.6)
    assert answer_position(res) == 3
    assert choice_score(res) == pytest.approx(2.5)
    bare = answer("c", "2", -3.0, -0.5, prefix=False)
    assert answer_position(bare) == 0 and choice_score(bare) == pytest.approx(-2.5)
    # "2" missing from the alternatives: bounded by the lowest listed log-probability
    only_one = result("c", [("1", {"1": -0.2, "A": -4.0})])
    assert choice_score(only_one) == pytest.approx(3.8)
    assert choice_score(result("c", [("Neither", {"Neither": -0.1})])) is None


def test_logprob_winner_is_the_sign_of_the_order_average() -> None:
    # both orders answer #1 (position bias) but A's margin is larger: A wins
    v = judge_logprobs(answer("ab", "1", -0.1, -3.1), answer("ba", "1", -0.5, -1.5))
    assert (v.winner, v.scores["a_over_b"]) == ("a", pytest.approx((3.0 - 1.0) / 2))
    # B preferred in both orders
    v = judge_logprobs(answer("ab", "2", -2.0, -0.1), answer("ba", "1", -0.1, -2.0))
    assert v.winner == "b" and v.status == "decided" and v.choices == [2, 1]
    # a tie, a missing digit and a missing result are never decided
    tie = judge_logprobs(answer("ab", "1", -0.5, -1.5), answer("ba", "1", -0.5, -1.5))
    assert (tie.winner, tie.status) == (None, "unparseable")
    nodigit = judge_logprobs(answer("ab", "1", -0.5, -1.5), result("ba", [("Both", {"Both": -0.1})]))
    assert (nodigit.winner, nodigit.status) == (None, "unparseable")
    assert judge_logprobs(answer("ab", "1", -0.5, -1.5), None).status == "missing"
    # agreeing-only drops a pair whose orders prefer different passages
    biased = (answer("ab", "1", -0.1, -3.1), answer("ba", "1", -0.5, -1.5))
    assert judge_logprobs(*biased, agreeing_only=True).status == "dropped_disagreeing"


def test_position_bias_and_inconsistency_on_a_hand_built_set() -> None:
    def j(c1: int | None, c2: int | None, ab: float | None = None, ba: float | None = None) -> Judgement:
        return Judgement("a", "decided", choices=[c1, c2], scores={"ab": ab, "ba": ba})

    judgements = [
        j(1, 1, 2.0, 1.0),    # #1 both times: position bias, scores disagree
        j(1, 2, 2.0, -1.0),   # consistent, A
        j(2, 1, -1.0, 2.0),   # consistent, B
        j(2, 2, -1.0, -0.5),  # #2 both times: position bias, scores disagree
        j(None, 1, 1.0, -1.0),  # one answer unparseable: left out of the text rates
    ]
    stats = order_stats(judgements)
    assert stats["pairs_with_two_text_answers"] == 4
    assert stats["position_bias_rate"] == 0.5 and stats["inconsistent_share"] == 0.5
    assert (stats["both_first"], stats["both_second"]) == (1, 1)
    assert stats["pairs_with_two_scores"] == 5 and stats["score_inconsistent_share"] == pytest.approx(2 / 5)


# --------------------------------------------------------------------------------------------
# preference files
# --------------------------------------------------------------------------------------------


@pytest.fixture
def tmp_generated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Send generated/ to a temporary folder."""
    root = tmp_path / "generated"
    monkeypatch.setattr(paths, "generated_root", lambda: root)
    return root


def test_preferences_written_and_reread(tmp_generated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    records = [retrieval_record("q1", 3), retrieval_record("q2", 3)]
    retrieval_file = tmp_generated / "toy" / "retrieval-minilm-sft.jsonl"
    write_jsonl(retrieval_file, records)
    sent: list[list[dict[str, Any]]] = []

    def fake_execute(
        config: LLMConfig, folder: Path, name: str, requests: list[dict[str, Any]], *, desc: str
    ) -> tuple[dict[str, dict[str, Any]], Sent]:
        sent.append(requests)
        out = {}
        for req in requests:  # the judge always prefers the passage shown as #1, a bit
            cid = req["custom_id"]
            out[cid] = answer(cid, "1", -0.2, -1.2 if cid.startswith("q1") else -0.7)
        out.pop("q2:dq2-1|dq2-2:ba")  # one failed request
        return out, Sent(len(out), 100 * len(out), 4 * len(out))

    monkeypatch.setattr("syntriever.judge.execute_requests", fake_execute)
    settings = ComparisonSettings(k=3, judge_mode="logprobs")
    out = run_comparisons("toy", "minilm-sft", JUDGE, settings)
    assert out == preferences_path("toy", JUDGE, "minilm-sft")
    assert out.parent.name == "comparison-v1-judge-test-minilm-sft"
    assert len(sent[0]) == 12
    # pure position bias: both orders answer #1 with the same margin, so d = 0 for every pair
    summary = json.loads(out.with_suffix(".summary.json").read_text())
    assert summary["pairs"] == 6 and summary["decided"] == 0
    assert summary["unparseable"] == 5 and summary["missing"] == 1
    assert summary["position_bias_rate"] == 1.0 and summary["both_first"] == 5
    assert summary["prompt_tokens"] == 100 * 11 and summary["completion_tokens"] == 4 * 11
    assert summary["sent_this_run"] == {"requests": 11, "prompt_tokens": 1100, "completion_tokens": 44}
    assert summary["llm"] == JUDGE.provenance() and summary["prompt_version"] == "v1"
    assert list(read_jsonl(out)) == []


def test_decided_triples_round_trip(tmp_path: Path) -> None:
    records = [retrieval_record("q1", 2)]
    results = {
        "q1:dq1-1|dq1-2:ab": answer("q1:dq1-1|dq1-2:ab", "2", -2.0, -0.2),
        "q1:dq1-1|dq1-2:ba": answer("q1:dq1-1|dq1-2:ba", "1", -0.1, -2.1),
    }
    settings = ComparisonSettings(k=2, judge_mode="logprobs")
    triples, summary = build_preferences(records, results, JUDGE, settings)
    assert summary["decided"] == 1 and summary["position_bias_rate"] == 0.0
    path = tmp_path / "toy_preferences.jsonl"
    write_jsonl(path, triples)
    (back,) = load_preferences(path)
    assert back["winner_id"] == "dq1-2" and back["loser_id"] == "dq1-1"
    assert back["winner"] == records[0]["texts"][1]  # full text, not the judge's truncation
    assert (back["winner_rank"], back["loser_rank"], back["mode"]) == (2, 1, "logprobs")
    assert back["raw_answers"] == ["Passage #2", "Passage #1"]
    assert back["scores"]["a_over_b"] == pytest.approx(-1.9)


def test_compact_answers_judge_alike_and_replay_without_the_llm(tmp_generated: Path) -> None:
    full = {
        "q:a|b:ab": answer("q:a|b:ab", "2", -2.0, -0.2),
        "q:a|b:ba": answer("q:a|b:ba", "1", -0.1, -2.1, prefix=False),
        "q:x|y:ab": result("q:x|y:ab", [("Passage", {"Passage": -0.1}), ("1", {"1": -0.3, "7": -4.0})]),
        "q:z|w:ab": result("q:z|w:ab", [("1", {"1": -0.1, "2": -2.5})]),  # the lowest is a digit
        "q:x|y:ba": text_answer("q:x|y:ba", "I cannot tell"),
    }
    for cid, res in full.items():
        small = compact_answer(res)
        assert small["custom_id"] == cid
        assert choice_score(small) == choice_score(res)  # "2" missing: same floor (-4.0)
        assert answer_text(small) == answer_text(res) and usage(small) == usage(res)
        assert len(json.dumps(small)) <= len(json.dumps(res))
        assert compact_answer(small) == small  # compacting is idempotent (re-saved answers stay equal)

    # A fresh checkout holds only the committed compact answers: nothing is sent again.
    records = [retrieval_record("q1", 3)]
    write_jsonl(tmp_generated / "toy" / "retrieval-m.jsonl", records)
    settings = ComparisonSettings(k=3, judge_mode="logprobs")
    requests = comparison_requests(records, OFFLINE, settings)
    folder = preferences_path("toy", OFFLINE, "m").parent
    write_jsonl(answers_path(folder, settings), [
        compact_answer(answer(r["custom_id"], "1", -0.2, -1.5 if r["custom_id"].endswith("ab") else -0.3))
        for r in requests
    ])
    out = run_comparisons("toy", "m", OFFLINE, settings)
    summary = json.loads(out.with_suffix(".summary.json").read_text())
    assert summary["answers_seeded_from_file"] == 6 and summary["missing"] == 0
    assert summary["decided"] == 3 and len(list(read_jsonl(out))) == 3
    # Drop one answer: the run now needs the (unreachable) judge and says so.
    lines = (folder / "comparison-logprobs.results.jsonl").read_text().splitlines()
    (folder / "comparison-logprobs.results.jsonl").unlink()
    write_jsonl(answers_path(folder, settings), [json.loads(line) for line in lines[1:]])
    with pytest.raises(IncompleteRun, match="1 of 6 requests have no result"):
        run_comparisons("toy", "m", OFFLINE, settings)
    assert len(list(read_jsonl(answers_path(folder, settings)))) == 5  # kept on failure too


def test_a_rebuild_from_committed_answers_keeps_what_earlier_runs_sent(tmp_generated: Path) -> None:
    records = [retrieval_record("q1", 2)]
    write_jsonl(tmp_generated / "toy" / "retrieval-m.jsonl", records)
    settings = ComparisonSettings(k=2, judge_mode="logprobs")
    requests = comparison_requests(records, OFFLINE, settings)
    out = preferences_path("toy", OFFLINE, "m")
    write_jsonl(answers_path(out.parent, settings),
                [compact_answer(answer(r["custom_id"], "1", -0.2, -1.5)) for r in requests])
    earlier = {"requests": 954, "prompt_tokens": 300_000, "completion_tokens": 5_000}
    write_json(out.with_suffix(".summary.json"),
               {"settings": asdict(settings), "sent_this_run": earlier, "seconds": 5337.3})
    for _ in range(2):  # a rebuild of a rebuild keeps it too
        run_comparisons("toy", "m", OFFLINE, settings)
        summary = json.loads(out.with_suffix(".summary.json").read_text())
        assert summary["sent_this_run"]["requests"] == 0 and summary["sent_all_runs"] == earlier
        assert summary["seconds"] < 60 and 5337.3 <= summary["seconds_all_runs"] < 5337.3 + 60
    other = ComparisonSettings(k=2, judge_mode="logprobs", max_chars=1500)  # another run's record
    write_json(out.with_suffix(".summary.json"), {"settings": asdict(other), "sent_this_run": earlier})
    run_comparisons("toy", "m", OFFLINE, settings)
    assert json.loads(out.with_suffix(".summary.json").read_text())["sent_all_runs"]["requests"] == 0


def test_limited_run_keeps_every_committed_answer(tmp_generated: Path) -> None:
    records = [retrieval_record("q1", 2), retrieval_record("q2", 2)]
    write_jsonl(tmp_generated / "toy" / "retrieval-m.jsonl", records)
    settings = ComparisonSettings(k=2, judge_mode="logprobs")
    requests = comparison_requests(records, OFFLINE, settings)
    folder = preferences_path("toy", OFFLINE, "m").parent
    committed = [compact_answer(answer(r["custom_id"], "1", -0.2, -1.5)) for r in requests]
    write_jsonl(answers_path(folder, settings), committed)
    out = run_comparisons("toy", "m", OFFLINE, settings, limit=1)  # a preview on q1 only
    assert json.loads(out.with_suffix(".summary.json").read_text())["queries"] == 1
    assert list(read_jsonl(answers_path(folder, settings))) == committed  # q2's answers stay


# --------------------------------------------------------------------------------------------
# retrieval with a (tiny) model
# --------------------------------------------------------------------------------------------


def _write_beir(folder: Path) -> None:
    docs = {
        "d1": "the sun is a star", "d2": "cats and dogs", "d3": "the river and the sea",
        "d4": "plants grow in light", "d5": "the capital of france is paris", "d6": "money in the bank",
    }
    write_jsonl(folder / "corpus.jsonl", [{"_id": k, "title": "", "text": v} for k, v in docs.items()])
    write_jsonl(folder / "queries.jsonl", [
        {"_id": "q1", "text": "what is the sun"}, {"_id": "q2", "text": "where is paris"},
        {"_id": "q3", "text": "how do plants grow"},
    ])
    (folder / "qrels").mkdir()
    (folder / "qrels" / "train.tsv").write_text(
        "query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td5\t1\nq3\td4\t0\n")


def test_retrieve_training_queries(
    tmp_path: Path, tmp_generated: Path, tiny_st_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SYNTRIEVER_DATA", str(tmp_path / "data"))
    _write_beir(tmp_path / "data" / "toy")
    out = retrieve_training_queries(str(tiny_st_model_dir), "toy", k=4, text_k=2, use_cache=False)
    assert out.parent == tmp_generated / "toy" and out.name.startswith("retrieval-")
    rows = list(read_jsonl(out))
    assert [r["query_id"] for r in rows] == ["q1", "q2"]  # q3 has no relevant passage
    for row in rows:
        assert len(row["doc_ids"]) == len(row["scores"]) == 4 and len(row["texts"]) == 2
        assert row["scores"] == sorted(row["scores"], reverse=True)
    summary = json.loads(out.with_suffix(".summary.json").read_text())
    assert summary["queries"] == 2 and set(summary["recall"]) == {"Recall@1", "Recall@2", "Recall@4"}
    assert summary["precision"] == "fp32"  # the judge's pairs come from an fp32 ranking by default

    # by default no texts are stored; the comparisons read the top k from the corpus
    bare = load_retrieval(retrieve_training_queries(str(tiny_st_model_dir), "toy", k=4, use_cache=False))
    assert all(r["texts"] == [] and len(r["doc_ids"]) == 4 for r in bare)
    filled = attach_texts(bare, "toy", k=3)
    for full, with_texts in zip(rows, filled, strict=True):
        assert with_texts["doc_ids"] == full["doc_ids"] and with_texts["texts"][:2] == full["texts"]
        assert len(with_texts["texts"]) == 3
    assert attach_texts(filled, "nowhere", k=3) is filled  # nothing missing: the corpus is not read
    bad = [{**bare[0], "doc_ids": ["not-a-doc", *bare[0]["doc_ids"][1:]]}]
    with pytest.raises(ValueError, match="not in the toy corpus"):
        attach_texts(bad, "toy", k=2)


# --------------------------------------------------------------------------------------------
# training examples, batching and a tiny training run
# --------------------------------------------------------------------------------------------

TRIPLES = [
    {"query_id": qid, "query": q, "winner_id": f"{qid}w{n}", "loser_id": f"{qid}l{n}",
     "winner": w, "loser": lo}
    for qid, q, pairs in [
        ("q1", "what causes heat", [("fire causes heat", "the moon"), ("the sun and fire", "a river")]),
        ("q2", "where is the capital of france", [("paris is the capital", "a bank"),
                                                   ("the city of paris", "trees in the sea")]),
        ("q3", "how do plants grow", [("plants grow by light", "dogs and cats"),
                                       ("light and water", "money in the bank")]),
    ]
    for n, (w, lo) in enumerate(pairs)
]


def test_build_preference_examples_columns_and_prefixes(tiny_st_model: SentenceTransformer) -> None:
    tiny_st_model.prompts = {"query": "query: ", "document": "passage: "}
    ds = build_preference_examples(TRIPLES, tiny_st_model)
    assert ds.column_names == ["query", "preferred", "less_preferred"]
    assert len(ds) == 6
    assert ds[0] == {"query": "query: what causes heat", "preferred": "passage: fire causes heat",
                     "less_preferred": "passage: the moon"}


def test_no_duplicates_sampler_keeps_repeated_queries_apart(tiny_st_model: SentenceTransformer) -> None:
    from sentence_transformers.base.sampler import NoDuplicatesBatchSampler

    ds = build_preference_examples(TRIPLES, tiny_st_model)
    for seed in range(5):
        sampler = NoDuplicatesBatchSampler(ds, batch_size=3, drop_last=False, seed=seed)
        batches = list(sampler)
        assert sorted(i for b in batches for i in b) == list(range(6))
        for batch in batches:
            queries = [ds[i]["query"] for i in batch]
            assert len(queries) == len(set(queries))


def test_tiny_partial_plackett_luce_training_run(tiny_st_model: SentenceTransformer, tmp_path: Path) -> None:
    from syntriever.losses import PartialPlackettLuceLoss
    from syntriever.training import train

    ds = build_preference_examples(TRIPLES, tiny_st_model)
    settings = TrainSettings(epochs=1, batch_size=3, warmup_steps=0, max_seq_length=16, max_steps=2)
    out = tmp_path / "tiny-final-toy"
    card = train(tiny_st_model, ds, PartialPlackettLuceLoss(tiny_st_model), settings, out, {"stage": 2})
    assert card["steps"] == 2 and math.isfinite(card["final_train_loss"])
    assert (out / "modules.json").is_file() and (out / "syntriever.json").is_file()
    assert json.loads((out / "syntriever.json").read_text())["loss"] == "PartialPlackettLuceLoss"
    # the training length (16) does not leak into the saved model (the tiny encoder's own: 32)
    assert SentenceTransformer(str(out), device="cpu").max_seq_length == 32


def test_retraining_refuses_to_replace_a_model_made_otherwise_and_saves_atomically(
    tiny_st_model: SentenceTransformer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from syntriever import training
    from syntriever.errors import UserError
    from syntriever.losses import PartialPlackettLuceLoss

    ds = build_preference_examples(TRIPLES, tiny_st_model)
    settings = TrainSettings(epochs=1, batch_size=3, warmup_steps=0, max_seq_length=16, max_steps=1)
    out = tmp_path / "tiny-final-toy"
    card = {"stage": 2, "teacher": "judge", "split": "train"}

    def run(card: dict[str, Any], settings: TrainSettings = settings, **kw: Any) -> dict[str, Any]:
        return training.train(tiny_st_model, ds, PartialPlackettLuceLoss(tiny_st_model), settings, out, card,
                              **kw)

    def saved() -> dict[str, Any]:
        return json.loads((out / "syntriever.json").read_text())

    run(card)
    (out / "marker").write_text("from the first run")
    run(card)  # same data and settings: the retrain replaces the folder
    assert not (out / "marker").exists() and saved()["teacher"] == "judge"
    for other, changed in (({**card, "teacher": "oracle"}, "teacher"), (card, "settings")):
        with pytest.raises(UserError, match=rf"{out} holds a complete model trained with other {changed} "
                                            r"than this run; .*--output-name NAME.*--overwrite"):
            run(other, replace(settings, seed=7) if changed == "settings" else settings)
    assert saved()["teacher"] == "judge" and saved()["settings"]["seed"] == 42
    run({**card, "teacher": "oracle"}, overwrite=True)
    assert saved()["teacher"] == "oracle"
    # a model trained on a subset of the queries (train_stage1.py --only-queries-of) is another model
    subset = {**card, "teacher": "oracle", "only_queries_of": "first150.jsonl"}
    run(subset)  # the saved card had no only_queries_of: not a difference
    with pytest.raises(UserError, match="other only_queries_of than this run"):
        run({**subset, "only_queries_of": None})

    # a crash while saving leaves the previous model whole, and no half-written folder behind
    def crash(path: Path, data: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(training, "write_json", crash)
    with pytest.raises(OSError, match="disk full"):
        training.save_model(tiny_st_model, out, {"stage": 2, "teacher": "identity"})
    assert saved()["teacher"] == "oracle" and (out / "modules.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny-final-toy"]
    monkeypatch.undo()
    killed = tmp_path / ".tiny-final-toy.saving-999999999"  # a run killed while saving (no such pid)
    (killed / "1_Pooling").mkdir(parents=True)
    training.save_model(tiny_st_model, out, {"stage": 2, "teacher": "identity"})
    assert saved()["teacher"] == "identity"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny-final-toy"]  # its leftover swept
    assert SentenceTransformer(str(out), device="cpu").max_seq_length == 32


def test_stage2_train_settings_and_names() -> None:
    import train_stage2

    parser = argparse.ArgumentParser()
    add_train_args(parser, "stage 2")

    def settings(*argv: str) -> TrainSettings:
        args = parser.parse_args(list(argv))
        return settings_from_args(args, stage=2)

    paper = settings("--paper")
    assert (paper.batch_size, paper.epochs, paper.lr, paper.max_seq_length) == (100, 1.0, 2e-5, 512)
    import torch

    if not torch.cuda.is_available():
        cpu = settings()
        assert (cpu.batch_size, cpu.epochs, cpu.max_seq_length) == (32, 1.0, 128)
    override = settings("--paper", "--batch-size", "8")
    assert override.batch_size == 8 and override.epochs == 1.0
    assert train_stage2.final_name("minilm-sft", "pl") == "minilm-final"
    assert train_stage2.final_name("minilm-sft", "bt") == "minilm-final-bt"
    stage1 = settings_from_args(parser.parse_args(["--paper"]))
    assert (stage1.batch_size, stage1.epochs, stage1.warmup_steps) == (60, 10.0, 1000)


# --------------------------------------------------------------------------------------------
# the real embedded judge (4 requests)
# --------------------------------------------------------------------------------------------


@pytest.mark.llm
def test_real_judge_logprob_mode(tmp_generated: Path, llama_server_bin: Path) -> None:
    record = {
        "query_id": "q1", "query": "What is the capital of France?", "doc_ids": ["a", "b", "c"],
        "scores": [0.9, 0.8, 0.7],
        "texts": ["Paris is the capital and largest city of France.",
                  "The Nile is a river in Africa.", "Bananas are rich in potassium."],
    }
    retrieval_file = tmp_generated / "toy" / "retrieval-m.jsonl"
    write_jsonl(retrieval_file, [record])
    config = LLMConfig(backend="local", model="qwen0.5b", concurrency=1, threads=1)
    settings = ComparisonSettings(k=3, pairs=2, judge_mode="logprobs", max_tokens=4)
    out = run_comparisons("toy", "m", config, settings)
    summary = json.loads(out.with_suffix(".summary.json").read_text())
    assert summary["pairs"] == 2 and summary["missing"] == 0 and summary["requests"] == 4
    assert summary["decided"] + summary["unparseable"] == 2
    results = list(read_jsonl(out.parent / "comparison-logprobs.results.jsonl"))
    assert len(results) == 4
    assert all(answer_position(r) is not None for r in results), [r["response"] for r in results]
    assert summary["completion_tokens"] > 0


def test_llm_concurrency_defaults_differ_for_the_embedded_server(monkeypatch) -> None:
    import argparse

    from syntriever.llm.config import add_llm_args, config_from_args

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    parser = argparse.ArgumentParser()
    add_llm_args(parser, default_concurrency=16, local_concurrency=2)
    assert config_from_args(parser.parse_args([])).concurrency == 2
    remote = config_from_args(parser.parse_args(["--llm-base-url", "http://127.0.0.1:9/v1"]))
    assert (remote.backend, remote.concurrency) == ("online", 16)
    assert config_from_args(parser.parse_args(["--llm-concurrency", "5"])).concurrency == 5


def test_warmup_steps_flag_replaces_the_profiles_ratio_on_cpu() -> None:
    parser = argparse.ArgumentParser()
    add_train_args(parser, "paper")
    given = settings_from_args(parser.parse_args(["--warmup-steps", "50"]))
    assert (given.warmup_steps, given.warmup_ratio) == (50, None)
    default = settings_from_args(parser.parse_args([]))
    assert default.warmup_ratio is not None or default.warmup_steps > 0


def test_retrieval_script_encodes_in_fp32_and_evaluate_in_auto() -> None:
    """retrieval.py picks the judge's pairs: bf16 near-tie swaps would send other pairs to the
    judge than the committed answers cover, so it defaults to fp32; evaluate.py keeps auto."""
    import argparse

    import retrieval
    from syntriever.cli import add_search_args

    parser = retrieval.build_parser()
    assert parser.parse_args(["m-sft", "toy"]).precision == "fp32"
    assert parser.parse_args(["m-sft", "toy", "--precision", "bf16"]).precision == "bf16"
    assert "judge" in parser.format_help().split("--precision")[-1]
    evaluate = argparse.ArgumentParser()
    add_search_args(evaluate)  # as evaluate.py does
    assert evaluate.parse_args([]).precision == "auto"


def test_judge_agreement_pairs_two_lengths_on_the_same_pairs() -> None:
    bench = load_benchmark("judge_agreement")
    assert bench.parse_lengths("600,1500,0") == [600, 1500, None]
    for bad in ("600,600", "-1", "long"):
        with pytest.raises(argparse.ArgumentTypeError):
            bench.parse_lengths(bad)
    short = {"q1": True, "q2": True, "q3": False, "q4": False, "q5": True}
    long = {"q1": True, "q2": False, "q3": True, "q4": True, "q6": True}  # q5, q6 undecided in one run
    assert bench.paired(short, long) == {
        "pairs": 4, "both_right": 1, "only_first_right": 1, "only_second_right": 2, "both_wrong": 0,
        "mcnemar_exact_p": 1.0,
    }
    assert bench.paired({f"q{i}": False for i in range(8)}, {f"q{i}": True for i in range(8)})[
        "mcnemar_exact_p"] == round(2 * 0.5**8, 4)
    # the default length alone keeps the committed file's name; other lengths never overwrite it
    assert bench.result_name("qwen1.5b", "logprobs", [600]) == "judge_agreement-qwen1.5b-logprobs.json"
    assert bench.result_name("qwen1.5b", "logprobs", [None]) == (
        "judge_agreement-qwen1.5b-logprobs-charswhole.json")
    assert bench.result_name("qwen1.5b", "logprobs", [600, 1500]) == (
        "judge_agreement-qwen1.5b-logprobs-chars600-1500.json")


def test_triple_directions_bt_always_pushes_the_loser_pl_can_pull_it() -> None:
    import torch

    bench = load_benchmark("triple_labels")
    triples = [{"query_id": q, "winner_id": w, "loser_id": lo}
               for q, w, lo in ("a12", "a13", "b45", "b46", "b47", "c18", "d92")]
    batches = bench.distinct_query_batches(triples, size=3)
    assert sorted(i for b in batches for i in b) == list(range(len(triples)))
    for b in batches:  # no query, and no passage, twice in a batch (c18 shares passage 1 with a12, a13)
        queries = [triples[i]["query_id"] for i in b]
        passages = [triples[i][k] for i in b for k in ("winner_id", "loser_id")]
        assert len(b) <= 3 and len(set(queries)) == len(queries) and len(set(passages)) == len(passages)

    gen = torch.Generator().manual_seed(0)
    unit = lambda x: torch.nn.functional.normalize(x, dim=1)  # noqa: E731
    q = unit(torch.randn(4, 8, generator=gen))
    winner = unit(q + 0.1 * torch.randn(4, 8, generator=gen))
    near_loser = unit(q + 0.3 * torch.randn(4, 8, generator=gen))  # close to its query
    far_loser = unit(torch.randn(4, 8, generator=gen) - q)  # below the other queries' passages
    for loser in (near_loser, far_loser):
        assert (bench.loser_pull(q, winner, loser, bench.LOSSES["bt"]) < 0).all()
    # PL's second pick asks the loser to beat the in-batch passages: a far loser is pulled in.
    assert (bench.loser_pull(q, winner, far_loser, bench.LOSSES["pl"]) > 0).all()


def test_the_order_model_is_the_trained_model_only_for_another_models_pairs(
    tiny_st_model: SentenceTransformer,
) -> None:
    assert order_model_for("minilm-sft", "minilm-sft", "scifact", tiny_st_model) is None
    assert order_model_for("minilm-sft-x", "minilm-sft", "scifact", tiny_st_model) is tiny_st_model


@pytest.mark.parametrize("env", [{}, {"OPENAI_API_KEY": "sk-test-0123456789"},
                                 {"OPENAI_BASE_URL": "http://127.0.0.1:9/v1"}])
def test_trainers_read_what_the_llm_scripts_write_without_llm_model(monkeypatch, env) -> None:
    """Without --llm-model, train_stage1.py and train_stage2.py look for the data of the LLM that
    parse_synthetic.py and parse_comparison.py would use in the same environment."""
    from syntriever.llm.config import add_llm_args, config_from_args
    from syntriever.llm.local import DEFAULT_JUDGE_PRESET, DEFAULT_PRESET

    class Parsed(Exception):
        """Raised with the LLM script's configuration once its flags are read."""

    def parse_and_stop(parser: argparse.ArgumentParser, **kwargs: Any) -> NoReturn:
        add_llm_args(parser, **kwargs)  # as syntriever.cli.parse_llm_cli, without its logging set-up
        raise Parsed(config_from_args(parser.parse_args()))

    for var in ("OPENAI_API_KEY", "SYNTRIEVER_LLM_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    scripts = (("train_stage1.py", "datasets/parse_synthetic.py", ["scifact"], DEFAULT_PRESET),
               ("train_stage2.py", "stage2/parse_comparison.py", ["minilm-sft", "scifact"],
                DEFAULT_JUDGE_PRESET))
    for script, llm_script, argv, local_model in scripts:
        module = load_script(llm_script)
        monkeypatch.setattr(module, "parse_llm_cli", parse_and_stop)
        monkeypatch.setattr("sys.argv", [llm_script, *argv])
        with pytest.raises(Parsed) as parsed:
            module.main()
        writes = parsed.value.args[0].model
        reads = load_script(script).build_parser().parse_args(["minilm-sft", "scifact"]).llm_model
        assert reads == writes == (local_model if not env else "gpt-4o"), (script, env)
