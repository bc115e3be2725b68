"""Query likelihood judge: the server protocol, the resumable scores file, the teachers on it."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from syntriever import prompts
from syntriever.errors import UserError
from syntriever.jsonl import DataError, read_jsonl, write_json, write_jsonl
from syntriever.judge import ComparisonSettings, answers_path
from syntriever.likelihood import (
    LikelihoodClient,
    likelihood_path,
    load_likelihoods,
    passages_of,
    score_passages,
    token_grammar,
    with_likelihood,
)
from syntriever.llm.local import DEFAULT_JUDGE_PRESET
from syntriever.stage2 import compared_pairs, teacher_preferences
from syntriever.teachers import (
    JUDGE_RETRIEVER_CHECKABLE,
    LIKELIHOOD,
    LIKELIHOOD_CHECKABLE,
    LIKELIHOOD_RETRIEVER,
    LIKELIHOOD_RETRIEVER_CHECKABLE,
    ORACLE_LIKELIHOOD_RETRIEVER,
    teach,
)
from tests.helpers import load_script
from tests.test_teachers import labels, pair, toy  # noqa: F401 (toy is a fixture)

VOCAB = {"claim": [11], "x": [12], "y": [13], "ß": [21, 22]}  # ß: two tokens, each part of a character
BYTE_PIECES = {21: [195], 22: [159]}


class FakeLlamaServer(BaseHTTPRequestHandler):
    """/apply-template, /tokenize and /completion as llama-server answers them; the forced
    tokens' log-probability is -1 per token, -0.5 when the prompt holds "good". Like llama-server,
    it returns no entry for a token that ends inside a multi-byte character (21), and the whole
    distribution (-3 per token) when asked for more probabilities than the vocabulary."""

    follow_grammar = True
    seen: list[dict[str, Any]] = []

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).seen.append({"path": self.path, **body})
        if self.path == "/apply-template":
            out = {"prompt": "|".join(m["content"] for m in body["messages"]) + "|assistant:"}
        elif self.path == "/tokenize":
            ids = [t for w in body["content"].split() for t in VOCAB[w]]
            out = {"tokens": [{"id": t, "piece": BYTE_PIECES.get(t, "w")} for t in ids]
                   if body.get("with_pieces") else ids}
        elif body["n_probs"] > 1000:
            assert body["grammar"] == 'root ::= "."' and isinstance(body["prompt"], list)
            top = [{"id": t, "logprob": -3.0} for ids in VOCAB.values() for t in ids]
            out = {"completion_probabilities": [{"id": 0, "logprob": -9.0, "top_logprobs": top}]}
        else:
            terms = body["grammar"].removeprefix("root ::= ").split()
            ids = [int(t.removeprefix("<[").removesuffix("]>")) for t in terms]
            if not self.follow_grammar:
                ids = ids[::-1]
            lp = -0.5 if "good" in body["prompt"] else -1.0
            out = {"completion_probabilities": [{"id": t, "logprob": lp} for t in ids if t != 21],
                   "tokens_evaluated": len(body["prompt"])}
        data = json.dumps(out).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    FakeLlamaServer.seen, FakeLlamaServer.follow_grammar = [], True
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), FakeLlamaServer)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    httpd.shutdown()


def test_token_grammar_allows_exactly_the_tokens() -> None:
    assert token_grammar([5, 17]) == "root ::= <[5]> <[17]>"
    with pytest.raises(ValueError):
        token_grammar([])


def test_client_forces_the_query_tokens_after_the_cut_passage(server: str) -> None:
    client = LikelihoodClient(server, max_chars=4)
    scored = client.loglik("claim x y", "good passage")
    template = next(r for r in FakeLlamaServer.seen if r["path"] == "/apply-template")
    assert template["messages"] == prompts.likelihood("good")  # the first 4 characters only
    prompt = "|".join(m["content"] for m in template["messages"]) + "|assistant:"
    assert scored == {"loglik": -1.5, "query_tokens": 3, "prompt_tokens": len(prompt), "split_char_tokens": 0}
    completion = FakeLlamaServer.seen[-1]
    assert completion["n_predict"] == 3 and completion["grammar"] == "root ::= <[11]> <[12]> <[13]>"
    assert client.loglik("claim x", "bad passage")["loglik"] == -2.0


def test_a_token_inside_a_character_is_read_from_the_whole_distribution(server: str) -> None:
    scored = LikelihoodClient(server).loglik("claim ß y", "good passage")
    # 11, 22 and 13 from the forced answer (-0.5 each), 21 from the distribution after "claim"
    assert (scored["loglik"], scored["query_tokens"], scored["split_char_tokens"]) == (-4.5, 4, 1)
    probe = FakeLlamaServer.seen[-1]
    assert probe["prompt"][1:] == [11] and probe["n_probs"] > 151936


def test_client_refuses_an_answer_that_is_not_the_query(server: str) -> None:
    FakeLlamaServer.follow_grammar = False
    with pytest.raises(RuntimeError, match="did not follow the token grammar"):
        LikelihoodClient(server).loglik("claim x", "good passage")


def test_scores_resume_and_never_ask_twice(server: str, tmp_path: Path) -> None:
    out = tmp_path / "likelihood-v1.jsonl"
    items = [("q1", "claim x", "d1", "good one"), ("q1", "claim x", "d2", "bad one")]
    client = LikelihoodClient(server, max_chars=100)
    first = score_passages(items[:1], client, out)
    assert first["sent_this_run"] == 1
    with out.open("a") as fh:
        fh.write('{"query_id": "q1", "doc_id": "d9", "logl')  # a write cut short by a crash
    second = score_passages(items, client, out)
    assert (second["already_scored"], second["sent_this_run"]) == (1, 1)
    assert load_likelihoods(out) == ({("q1", "d1"): -1.0, ("q1", "d2"): -2.0}, 100)
    assert sum(r["path"] == "/completion" for r in FakeLlamaServer.seen) == 2


def test_scores_file_refuses_another_truncation_and_bad_lines(tmp_path: Path) -> None:
    out = tmp_path / "likelihood-v1.jsonl"
    row = {"query_id": "q1", "doc_id": "d1", "loglik": -1.0, "max_chars": 1500}
    write_jsonl(out, [row])
    assert load_likelihoods(out, 1500) == ({("q1", "d1"): -1.0}, 1500)
    with pytest.raises(DataError, match=r"likelihood-v1.jsonl:1: scored with max_chars 1500 .*, not 600"):
        load_likelihoods(out, 600)
    with pytest.raises(DataError, match=r"max_chars 1500 .*, not None; score with `--max-chars 1500`"):
        load_likelihoods(out, None)  # whole passages are another setting, not "unchecked"
    write_jsonl(out, [row, {**row, "doc_id": "d2", "max_chars": None}])
    with pytest.raises(DataError, match=r"v1.jsonl:2: scored with max_chars None, the lines before"):
        load_likelihoods(out)
    write_jsonl(out, [{"query_id": "q1", "doc_id": "d1", "loglik": "high"}])
    with pytest.raises(DataError, match=r"likelihood-v1.jsonl:1: not a query likelihood record"):
        load_likelihoods(out)


def test_likelihood_verdicts_replace_the_judges_and_drive_its_teachers() -> None:
    # the judge prefers A everywhere; the likelihood prefers B on q1 and q3, A on q2
    pairs = [pair("q1", 1.0, (0.9, 0.5)), pair("q2", 1.0, (0.7, 0.6)), pair("q3", 1.0, (0.8, 0.1))]
    scores = {("q1", "q1-a"): -9.0, ("q1", "q1-b"): -3.0, ("q2", "q2-a"): -2.0, ("q2", "q2-b"): -4.0,
              ("q3", "q3-a"): -5.0, ("q3", "q3-b"): -4.0}
    scored = with_likelihood(pairs, scores)
    assert [p.verdict.winner for p in scored] == ["b", "a", "b"]
    assert scored[0].margin == -6.0 and scored[0].verdict.scores["loglik_b"] == -3.0
    assert with_likelihood(pairs, {})[0].verdict.status == "missing"
    tie = with_likelihood(pairs[:1], {("q1", "q1-a"): -1.0, ("q1", "q1-b"): -1.0})[0].verdict
    assert (tie.winner, tie.status) == (None, "tied")
    assert [(q, d) for q, _, d, _ in passages_of(pairs + pairs[:1])] == [
        (q, f"{q}-{s}") for q in ("q1", "q2", "q3") for s in "ab"]
    qrels = labels(q1="b", q2="b", q3="")
    triples, report = teach(scored, LIKELIHOOD_CHECKABLE, qrels)
    assert [(t["winner_id"], t["teacher"]) for t in triples] == [
        ("q1-b", LIKELIHOOD_CHECKABLE), ("q2-a", LIKELIHOOD_CHECKABLE)]
    assert report["teacher_accuracy_checkable"] == 0.5
    assert report["pairs_dropped"] == {"not_label_checkable": 1}
    # with the retrieval gap (units of spread): q3's large gap outweighs its small likelihood margin
    combined, _ = teach(scored, LIKELIHOOD_RETRIEVER, qrels)
    assert [t["winner_id"] for t in combined] == ["q1-b", "q2-a", "q3-a"]
    checkable, report = teach(scored, LIKELIHOOD_RETRIEVER_CHECKABLE, qrels)
    assert [t["winner_id"] for t in checkable] == ["q1-b", "q2-a"]
    judge_checkable, _ = teach(pairs, JUDGE_RETRIEVER_CHECKABLE, qrels)
    assert [t["winner_id"] for t in judge_checkable] == ["q1-a", "q2-a"]
    # the labels where a passage is labelled (q2: against the likelihood), likelihood + gap on q3
    filled, report = teach(scored, ORACLE_LIKELIHOOD_RETRIEVER, qrels)
    assert [t["winner_id"] for t in filled] == ["q1-b", "q2-b", "q3-a"]
    assert report["teacher_accuracy_checkable"] == 1.0 and report["kept_pairs_without_labelled_passage"] == 1
    with pytest.raises(ValueError, match="needs the query likelihood's verdicts"):
        teach(pairs, LIKELIHOOD, qrels)  # the judge's verdicts under a likelihood name


def test_likelihood_teacher_reads_the_scores_beside_the_judges_answers(toy: dict[str, Any]) -> None:  # noqa: F811
    # the toy's pairs were judged by a remote LLM, which cannot score them: judge with an embedded one
    with pytest.raises(DataError, match=f"12 of the 12 .* embedded LLM, on pairs it judged .*judge-test.* "
                       f"`python stage2/parse_comparison.py m-sft toy --llm-model {DEFAULT_JUDGE_PRESET}`, "
                       f"then `python stage2/score_likelihood.py MODEL toy --pairs-from m-sft --llm-model "
                       f"{DEFAULT_JUDGE_PRESET}`"):
        teacher_preferences("toy", toy["prefs"], "m-sft", LIKELIHOOD, "train")
    summary = toy["prefs"].with_suffix(".summary.json")  # judged by an embedded LLM: it scores them
    write_json(summary, {**json.loads(summary.read_text()), "llm": {"backend": "local", "model": "qwen0.5b"}})
    make = "`python stage2/score_likelihood.py MODEL toy --pairs-from m-sft --llm-model qwen0.5b`"
    with pytest.raises(DataError, match=f"12 of the 12 .* make them with {re.escape(make)}"):
        teacher_preferences("toy", toy["prefs"], "m-sft", LIKELIHOOD, "train")
    # the judge prefers the lower doc id; the likelihood the higher one
    rows = [{"query_id": q, "doc_id": d, "loglik": float(d[1]), "max_chars": 1500}
            for q in ("q1", "q2", "q3", "q4") for d in ("d0", "d1", "d2")]
    write_jsonl(likelihood_path(toy["prefs"].parent), rows[1:])  # q1-d0 not scored
    with pytest.raises(DataError, match="2 of the 12 pairs teacher likelihood decides have no"):
        teacher_preferences("toy", toy["prefs"], "m-sft", LIKELIHOOD, "train")
    # q1's checkable pairs are d1's (the relevant one) against d0 and d2: still one unscored
    with pytest.raises(DataError, match="1 of the 8 pairs .* --checkable-only"):
        teacher_preferences("toy", toy["prefs"], "m-sft", LIKELIHOOD_CHECKABLE, "train")
    write_jsonl(likelihood_path(toy["prefs"].parent), rows)
    triples, report = teacher_preferences("toy", toy["prefs"], "m-sft", LIKELIHOOD, "train")
    assert all(int(t["winner_id"][1]) > int(t["loser_id"][1]) for t in triples) and len(triples) == 12
    assert report["verdicts_from"].startswith("query likelihood") and report["teacher"] == LIKELIHOOD
    assert report["likelihood_max_chars"] == 1500 and report["likelihood_pairs_scored"] == 12


def test_likelihood_teacher_over_every_pair_of_the_top_k(toy: dict[str, Any]) -> None:  # noqa: F811
    # the judge never answered q1's pair d1|d2: the judged pairs lack it, the top 3 has it
    answers = answers_path(toy["prefs"].parent, ComparisonSettings(k=3, judge_mode="logprobs"))
    kept = [r for r in read_jsonl(answers) if not r["custom_id"].startswith("q1:d1|d2")]
    write_jsonl(answers, kept)
    rows = [{"query_id": q, "doc_id": d, "loglik": float(d[1]), "max_chars": 1500}
            for q in ("q1", "q2", "q3", "q4") for d in ("d0", "d1", "d2")]
    write_jsonl(likelihood_path(toy["prefs"].parent), rows)
    _, judged = teacher_preferences("toy", toy["prefs"], "m-sft", LIKELIHOOD, "train")
    triples, report = teacher_preferences("toy", toy["prefs"], "m-sft", LIKELIHOOD, "train", top_k=3)
    assert (judged["pairs_compared"], report["pairs_compared"]) == (11, 12)
    assert ("d2", "d1") in {(t["winner_id"], t["loser_id"]) for t in triples if t["query_id"] == "q1"}
    assert report["likelihood_top_k"] == 3
    _, top2 = teacher_preferences("toy", toy["prefs"], "m-sft", LIKELIHOOD, "train", top_k=2)
    assert top2["pairs_compared"] == 4  # one pair (d0, d1) per query
    write_jsonl(likelihood_path(toy["prefs"].parent), [r for r in rows if r["doc_id"] != "d2"])
    with pytest.raises(DataError, match="8 of the 12 pairs .* --top-k 3"):
        teacher_preferences("toy", toy["prefs"], "m-sft", LIKELIHOOD, "train", top_k=3)
    with pytest.raises(UserError, match="--top-k needs a teacher that decides a pair without"):
        teacher_preferences("toy", toy["prefs"], "m-sft", "judge", "train", top_k=2)
    oracle, oracle_report = teacher_preferences("toy", toy["prefs"], "m-sft", "oracle", "train", top_k=3)
    relevant = {"q1": "d1", "q2": "d0", "q3": "d2", "q4": "d2"}
    assert oracle_report["pairs_kept"] == 8  # one labelled passage against each of the two others
    assert all(t["winner_id"] == relevant[t["query_id"]] for t in oracle)
    assert ("q1", "d1", "d2") in {(t["query_id"], t["winner_id"], t["loser_id"]) for t in oracle}  # unjudged
    with pytest.raises(UserError, match="at least 2"):
        teacher_preferences("toy", toy["prefs"], "m-sft", LIKELIHOOD, "train", top_k=1)


def test_top_k_passages_are_the_splits_queries_in_rank_order_with_corpus_texts(
    toy: dict[str, Any],  # noqa: F811
) -> None:
    def top_k(split: str, k: int) -> list[tuple[str, str, str, str]]:
        return passages_of(compared_pairs("toy", toy["prefs"], "m-sft", split, top_k=k).pairs)

    got = top_k("train-nodev", 2)  # q4 is carved into dev
    want = [(q, f"question {q[1]}", d, f"passage {d[1]}") for q in ("q1", "q2", "q3") for d in ("d0", "d1")]
    assert got == want
    assert len(top_k("train", 5)) == 4 * 3  # the file holds 3 per query


def test_score_summary_keeps_every_run_and_each_models_label_check(tmp_path: Path) -> None:
    script = load_script("stage2/score_likelihood.py")
    summary_file = tmp_path / "likelihood-v1.summary.json"
    assert script._earlier_runs(summary_file) == {"runs": [], "label_check": {}}
    check = {"likelihood": {"teacher_accuracy_checkable": 0.9}}
    command = "python stage2/score_likelihood.py m-nodev toy"
    one_run = {"model": "m-nodev", "split": "train-nodev", "checkable_only": True, "pairs_compared": 4,
               "pairs_scored": 2, "run": {"passages": 3, "seconds": 9.0}, "label_check": check,
               "commands": ["python datasets/parse_synthetic.py toy", command]}
    summary_file.write_text(json.dumps(one_run))  # the layout that held one run only
    earlier = script._earlier_runs(summary_file)
    assert earlier["runs"] == [{"model": "m-nodev", "split": "train-nodev", "checkable_only": True,
                                "passages": 3, "seconds": 9.0, "command": command}]
    assert earlier["label_check"] == {
        "m-nodev": {"split": "train-nodev", "pairs_compared": 4, "pairs_scored": 2, **check}}
    summary_file.write_text(json.dumps({**earlier, "runs": [*earlier["runs"], {"model": "m"}]}))
    assert [r["model"] for r in script._earlier_runs(summary_file)["runs"]] == ["m-nodev", "m"]
    summary_file.write_text("{not json")
    with pytest.raises(DataError, match="likelihood-v1.summary.json:1: not JSON"):
        script._earlier_runs(summary_file)
