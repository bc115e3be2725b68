"""Query likelihood: log P(query | passage) under a local LLM, a pointwise stage-2 judge (not in
the paper).

UPR (Sachan et al., 2022, "Improving Passage Retrieval with Zero-Shot Question Generation") ranks
a passage by how likely a language model finds the query after reading it. Here it decides the
pairs the pairwise judge compared (:func:`syntriever.judge.judged_pairs`): for a pair (A, B) the
margin ``ll(A) - ll(B)`` takes the place of the judge's order-averaged margin d
(:func:`with_likelihood`), so the judge's teachers run on it under their ``likelihood`` names
(:data:`syntriever.teachers.LIKELIHOOD_OF`). One model request per passage (K per query instead
of K(K-1) for both orders of every pair), and no answer position to be biased towards.

The request (:func:`syntriever.prompts.likelihood`) asks for a claim or question the passage
supports or answers, with the passage cut to its first ``max_chars`` characters; the query's own
tokens are then forced as the answer: llama-server's ``/completion`` with a grammar that allows
exactly those tokens (``<[id]>`` terms) returns, per token, its log-probability under the model's
unconstrained distribution. The sum is ``ll``. OpenAI chat models return log-probabilities of
sampled tokens only, so this judge needs a llama.cpp server (the embedded LLMs).

Scores are appended to ``likelihood-<version>.jsonl`` in the comparison folder of the pairs
(:func:`likelihood_path`), one record per (query, passage), each flushed before the next request:
a stopped run resumes where it stopped and never asks twice.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm

from syntriever import prompts
from syntriever.jsonl import DataError, JsonlAppender, read_jsonl_numbered
from syntriever.teachers import Pair
from syntriever.verdicts import Judgement

logger = logging.getLogger(__name__)

DEFAULT_MAX_CHARS = 1500  # the pairwise judge's longer setting (README "Stage 2 on small models")
WHOLE_VOCABULARY = 1 << 20  # an n_probs above the vocabulary size: llama-server returns every token
Key = tuple[str, str]  # (query id, passage id)


def likelihood_path(comparison_folder: Path) -> Path:
    """``<comparison folder>/likelihood-<prompt version>.jsonl``."""
    return comparison_folder / f"likelihood-{prompts.LIKELIHOOD_VERSION}.jsonl"


def token_grammar(tokens: Sequence[int]) -> str:
    """A GBNF grammar that matches exactly ``tokens``, in order."""
    if not tokens:
        raise ValueError("a query of no tokens has no likelihood")
    return "root ::= " + " ".join(f"<[{t}]>" for t in tokens)


class LikelihoodClient:
    """Query log-likelihoods from a running llama-server (its root URL, not ``/v1``)."""

    def __init__(
        self, server_url: str, max_chars: int | None = DEFAULT_MAX_CHARS, timeout: float = 600.0
    ) -> None:
        self.root = server_url.removesuffix("/").removesuffix("/v1")
        self.max_chars = max_chars
        self.timeout = timeout

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        request = urllib.request.Request(self.root + path, json.dumps(body).encode(),
                                         {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=self.timeout) as response:
            return json.load(response)

    def loglik(self, query: str, passage: str) -> dict[str, Any]:
        """``{"loglik", "query_tokens", "prompt_tokens", "split_char_tokens"}`` of ``query`` after
        ``passage``; ``split_char_tokens`` counts the tokens scored one by one (below)."""
        text = passage[: self.max_chars] if self.max_chars else passage
        prompt = self._post("/apply-template", {"messages": prompts.likelihood(text)})["prompt"]
        pieces = self._post("/tokenize", {"content": query, "with_pieces": True})["tokens"]
        tokens = [p["id"] for p in pieces]
        answer = self._post("/completion", {
            "prompt": prompt, "n_predict": len(tokens), "n_probs": 1, "temperature": 0,
            "grammar": token_grammar(tokens), "cache_prompt": True,
        })
        logprobs = _aligned(answer["completion_probabilities"], pieces, query)
        # llama-server drops the entry of a token that ends inside a multi-byte character (its
        # piece is bytes, not text, e.g. " \xc3" of " ß"): read that token's log-prob from the
        # whole distribution at its position, while forcing one ASCII character there
        split = [i for i, lp in enumerate(logprobs) if lp is None]
        for i in split:
            logprobs[i] = self._distribution_logprob([prompt, *tokens[:i]], tokens[i], query)
        return {"loglik": sum(logprobs), "query_tokens": len(tokens),
                "prompt_tokens": answer.get("tokens_evaluated"), "split_char_tokens": len(split)}

    def _distribution_logprob(self, prompt: list[str | int], token: int, query: str) -> float:
        answer = self._post("/completion", {
            "prompt": prompt, "n_predict": 1, "n_probs": WHOLE_VOCABULARY, "temperature": 0,
            "grammar": 'root ::= "."', "cache_prompt": True,
        })
        top = answer["completion_probabilities"][0]["top_logprobs"]
        found = [t["logprob"] for t in top if t["id"] == token]
        if not found:
            raise RuntimeError(f"token {token} of query {query[:60]!r} is not in the server's distribution")
        return found[0]


def _aligned(probs: list[dict[str, Any]], pieces: list[dict[str, Any]], query: str) -> list[float | None]:
    """Each query token's log-prob from the server's entries; None for a token the server folded
    into the next entry (a piece of bytes, not whole UTF-8 text)."""
    refused = RuntimeError(f"the server did not follow the token grammar for query {query[:60]!r}")
    logprobs: list[float | None] = [None] * len(pieces)
    i = 0
    for entry in probs:
        while i < len(pieces) and pieces[i]["id"] != entry["id"] and isinstance(pieces[i]["piece"], list):
            i += 1
        if i == len(pieces) or pieces[i]["id"] != entry["id"]:
            raise refused
        logprobs[i] = entry["logprob"]
        i += 1
    if i != len(pieces):
        raise refused
    return logprobs


def load_likelihoods(
    path: Path, max_chars: int | None | str = "any"
) -> tuple[dict[Key, float], int | None]:
    """(query id, passage id) -> ll from a scores file, and the passage cut the file was scored
    with (None: whole passages). Refuses a file that mixes cuts, and one whose cut is not
    ``max_chars`` when that is given (``"any"``: any single cut)."""
    scores: dict[Key, float] = {}
    cuts: set[int | None] = set()
    if not path.is_file():
        return scores, None
    for lineno, rec in read_jsonl_numbered(path, drop_torn_tail=True):
        if not isinstance(rec.get("loglik"), (int, float)) or "query_id" not in rec or "doc_id" not in rec:
            raise DataError(f"{path}:{lineno}: not a query likelihood record (query_id, doc_id, loglik); "
                            "remove the line and run stage2/score_likelihood.py again")
        cut = rec.get("max_chars")
        if cuts and cut not in cuts:
            raise DataError(f"{path}:{lineno}: scored with max_chars {cut}, the lines before with "
                            f"{next(iter(cuts))}; move the file away and score again "
                            "(stage2/score_likelihood.py)")
        if max_chars != "any" and cut != max_chars:
            raise DataError(f"{path}:{lineno}: scored with max_chars {cut} (None: whole passages), not "
                            f"{max_chars}; score with `--max-chars {cut or 0}` or move the file away")
        cuts.add(cut)
        scores[(rec["query_id"], rec["doc_id"])] = float(rec["loglik"])
    return scores, next(iter(cuts)) if cuts else None


def passages_of(pairs: Sequence[Pair]) -> list[tuple[str, str, str, str]]:
    """The distinct (query id, query, passage id, passage text) of ``pairs``, in pair order."""
    seen: dict[Key, tuple[str, str, str, str]] = {}
    for p in pairs:
        for doc, text in zip(p.ids, p.texts, strict=True):
            seen.setdefault((p.query_id, doc), (p.query_id, p.query, doc, text))
    return list(seen.values())


def score_passages(
    items: Sequence[tuple[str, str, str, str]], client: LikelihoodClient, path: Path
) -> dict[str, Any]:
    """Score the (query id, query, passage id, text) ``items`` not yet in ``path``; returns the
    run's counts, prompt tokens and time."""
    done, _ = load_likelihoods(path, client.max_chars)
    todo = [item for item in items if (item[0], item[2]) not in done]
    logger.info("%d of %d passages already scored in %s; %d to score",
                len(items) - len(todo), len(items), path, len(todo))
    start, prompt_tokens = time.monotonic(), 0
    with JsonlAppender(path) as out:
        for qid, query, doc, text in tqdm(todo, desc="query likelihood", unit="passage"):
            scored = client.loglik(query, text)
            prompt_tokens += scored["prompt_tokens"] or 0
            out.append({"query_id": qid, "doc_id": doc, **scored, "max_chars": client.max_chars})
    seconds = time.monotonic() - start
    return {"passages": len(items), "already_scored": len(items) - len(todo), "sent_this_run": len(todo),
            "seconds": round(seconds, 1), "requests_per_s": round(len(todo) / seconds, 3) if todo else None,
            "prompt_tokens_this_run": prompt_tokens}


def with_likelihood(pairs: Sequence[Pair], scores: dict[Key, float]) -> list[Pair]:
    """``pairs`` with the judge's verdict replaced by the query likelihood's: A wins when
    ``ll(A) > ll(B)`` (margin ``ll(A) - ll(B)``); "missing" where a passage has no score."""
    out = []
    for p in pairs:
        ll = [scores.get((p.query_id, d)) for d in p.ids]
        if None in ll:
            verdict = Judgement(None, "missing")
        else:
            margin = ll[0] - ll[1]
            winner = None if margin == 0 else ("a" if margin > 0 else "b")
            verdict = Judgement(winner, "decided" if winner else "tied",
                                scores={"a_over_b": margin, "loglik_a": ll[0], "loglik_b": ll[1]})
        out.append(dataclasses.replace(p, verdict=verdict))
    return out
