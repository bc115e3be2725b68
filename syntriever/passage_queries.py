"""Synthetic queries for passages of the collection (InPars/GPL-style; not in the paper).

The paper's stage 1 has the LLM write passages for real queries. Small local LLMs write passages
that do not teach MiniLM anything the labelled pairs do not (``results/scifact/dev/DECISIONS.md``).
This runs the other way: the LLM reads a real passage, sampled from the corpus with a fixed seed,
and writes one query of the collection's kind (shown by a few training queries in the prompt) that
the passage answers. The pair (synthetic query, real passage) is a labelled pair for stage 1
(``train_stage1.py --passage-queries``): the text the retriever learns to find is real.

Passages are sampled from the whole corpus: no relevance label is read, so the test split's
passages are as likely to be drawn as any other (the usual unsupervised domain adaptation of
GPL and InPars).
"""

from __future__ import annotations

import logging
import random
import re
import statistics
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from syntriever import prompts
from syntriever.data import TRAIN_NODEV, BeirDataset, relevant_query_ids
from syntriever.errors import UserError
from syntriever.jsonl import DataError, read_json, read_jsonl_numbered, write_json, write_jsonl
from syntriever.llm.config import LLMConfig
from syntriever.llm.requests import answer_text, chat_request, finish_reason, usage
from syntriever.llm.runner import Sent, execute_requests
from syntriever.meta_text import is_meta_text
from syntriever.paths import generated_dir
from syntriever.provenance import with_commands
from syntriever.synthesis import other_query_text
from syntriever.synthesis_quality import coverage, normalise

logger = logging.getLogger(__name__)

# Answers that talk about the passage ("The passage supports the claim that ...") are dropped.
_ABOUT_PASSAGE = re.compile(r"\b(?:the|this) (?:passage|text|abstract)\b", re.IGNORECASE)
ID_PREFIX = "pq-"  # query ids of the synthetic queries: pq-<doc_id>
RUN_PREFIX = "passage-queries"  # run folders: passage-queries-<prompt version>-<model tag>


@dataclass
class PassageQuerySettings:
    """What is sampled and how the LLM is asked."""

    passages: int = 800  # corpus passages sampled (all when the corpus is smaller)
    examples: int = 5  # training queries shown in the prompt
    max_chars: int = 800  # passage cut for the prompt (at a word boundary)
    temperature: float = 0.7
    max_tokens: int = 48  # a claim or question fits; longer answers are copies running on
    seed: int = 0
    chunk: int = 100  # passages per step run, so a stopped run leaves complete chunks

    def __post_init__(self) -> None:
        for name in ("passages", "examples", "max_chars", "max_tokens", "chunk"):
            if getattr(self, name) < 1:
                raise UserError(f"{name} must be at least 1, got {getattr(self, name)}")


def run_dir(dataset: str, config: LLMConfig) -> Path:
    """Folder of one run: dataset, prompt version and answering model."""
    return generated_dir(dataset) / f"{RUN_PREFIX}-{prompts.PASSAGE_QUERY_VERSION}-{config.model_tag()}"


def output_path(dataset: str, config: LLMConfig, passages: int) -> Path:
    """``<dataset>_passage_queries.n<passages>.jsonl`` of a run."""
    return run_dir(dataset, config) / f"{dataset}_passage_queries.n{passages}.jsonl"


def sample_passages(ds: BeirDataset, n: int, seed: int) -> list[str]:
    """The first ``n`` corpus ids of a shuffle seeded with ``seed``: a smaller run's passages are
    the first of a larger one's, so a stopped large run leaves a complete smaller one."""
    ids = sorted(ds.corpus)
    random.Random(seed).shuffle(ids)
    return ids[:n]


def example_queries(train: BeirDataset, n: int, seed: int) -> list[str]:
    """``n`` queries of the training split that have a relevant passage, drawn with ``seed``."""
    ids = sorted(relevant_query_ids(train.qrels))
    if not ids:
        raise UserError(f"{train.name}/{train.split} has no labelled queries to show as examples")
    return [train.queries[q] for q in random.Random(seed).sample(ids, min(n, len(ids)))]


def cut(text: str, max_chars: int) -> str:
    """``text`` cut to at most ``max_chars`` characters at a word boundary."""
    if len(text) <= max_chars:
        return text
    head = text[: max_chars + 1]  # one more: a space right after the limit ends a whole word
    return head[: head.rfind(" ")] if " " in head else head[:max_chars]


def requests_for(
    ds: BeirDataset, doc_ids: list[str], examples: list[str], config: LLMConfig,
    settings: PassageQuerySettings,
) -> list[dict[str, Any]]:
    """One request per passage, ``custom_id`` = its doc id."""
    return [chat_request(doc_id, prompts.passage_query(cut(ds.passage_text(doc_id), settings.max_chars),
                                                       examples),
                         model=config.model, temperature=settings.temperature,
                         max_tokens=settings.max_tokens, seed=settings.seed)
            for doc_id in doc_ids]


def build_records(
    ds: BeirDataset, doc_ids: list[str], results: dict[str, dict[str, Any]], config: LLMConfig
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """One record per passage whose answer is a query, and a summary. Empty answers, answers cut
    at the token cap and answers about the passage are dropped and counted, never mended."""
    records, empty, capped, meta = [], 0, 0, 0
    for doc_id in doc_ids:
        result = results[doc_id]
        query = other_query_text(answer_text(result))
        if not query:
            empty += 1
            continue
        if finish_reason(result) == "length":  # a copy of the passage running on, not a query
            capped += 1
            continue
        if is_meta_text(query) or _ABOUT_PASSAGE.search(query):
            meta += 1
            continue
        records.append({"query_id": f"{ID_PREFIX}{doc_id}", "doc_id": doc_id, "query": query,
                        "finish_reason": finish_reason(result), "model": config.model,
                        "prompt_version": prompts.PASSAGE_QUERY_VERSION})
    titles = {r["doc_id"]: (ds.corpus[r["doc_id"]].get("title") or "") for r in records}
    titled = [r for r in records if titles[r["doc_id"]].strip()]  # title figures: None without titles
    summary = {
        "passages": len(doc_ids), "queries": len(records),
        "dropped": {"empty": empty, "cap_hit": capped, "about_the_passage": meta},
        "quality": {
            "copies_title": sum(normalise(r["query"]) == normalise(titles[r["doc_id"]]) for r in titled)
            / len(titled) if titled else None,
            "median_words": statistics.median(len(r["query"].split()) for r in records) if records else None,
            "median_title_coverage": statistics.median(coverage(r["query"], titles[r["doc_id"]])
                                                       for r in titled) if titled else None,
        },
        "prompt_tokens": sum(usage(r)[0] for r in results.values()),
        "completion_tokens": sum(usage(r)[1] for r in results.values()),
        "llm": config.provenance(), "prompt_version": prompts.PASSAGE_QUERY_VERSION,
    }
    return records, summary


PROMPT_FILE = "prompt_settings.json"


def check_prompt_settings(folder: Path, prompt: dict[str, Any], record: bool) -> None:
    """A run folder keeps the answers of one prompt set-up (examples, cut, sampling): the first run
    that asks records it (``record``; a dry run does not), a later run with another one is refused
    (its answers would be mixed in)."""
    path = folder / PROMPT_FILE
    if path.is_file():
        before = read_json(path, f"restore it with `git checkout {path}`, or move the folder away to "
                           "start anew")
        if before != prompt:
            changed = sorted(k for k in prompt.keys() | before.keys() if prompt.get(k) != before.get(k))
            raise UserError(f"{path}: this folder holds answers to another prompt set-up "
                            f"({', '.join(changed)} differ); run with the recorded settings, or move the "
                            "folder away to start anew")
    elif record:
        write_json(path, prompt)


def run_passage_queries(
    ds: BeirDataset, config: LLMConfig, settings: PassageQuerySettings
) -> Path | None:
    """Sample passages of ``ds``'s corpus, ask for a query per passage (the examples: queries of
    ``ds``'s split) resuming from earlier answers, and write the records; None for a dry run."""
    folder = run_dir(ds.name, config)
    doc_ids = sample_passages(ds, settings.passages, settings.seed)
    examples = example_queries(ds, settings.examples, settings.seed)
    prompt = {k: v for k, v in asdict(settings).items() if k not in ("passages", "chunk")}
    check_prompt_settings(folder, {**prompt, "examples_split": ds.split, "examples_shown": examples},
                          record=not config.dry_run)
    chunk = settings.chunk if config.backend != "batch" else len(doc_ids)  # one batch job
    results: dict[str, dict[str, Any]] = {}
    sent = Sent()
    for start in range(0, len(doc_ids), chunk):
        part = doc_ids[start:start + chunk]
        answers, step = execute_requests(
            config, folder, "generation", requests_for(ds, part, examples, config, settings),
            desc=f"passage queries {start + 1}-{start + len(part)} of {len(doc_ids)}")
        if answers is None:
            return None
        results.update({d: answers[d] for d in part})
        sent += step
    records, summary = build_records(ds, doc_ids, results, config)
    out = output_path(ds.name, config, settings.passages)
    write_jsonl(out, records)
    summary.update(settings=asdict(settings), examples=examples, examples_split=ds.split,
                   sent_this_run=asdict(sent))
    write_json(out.with_suffix(".summary.json"), with_commands(summary))
    logger.info("wrote %d queries for %d passages to %s; quality %s", len(records), len(doc_ids), out,
                summary["quality"])
    return out


def make_command(path: Path, dataset: str) -> str:
    """The command that makes the passage-query file ``path``: its model and passage count are read
    from the run folder's name and the file's ``.n<N>`` suffix when they have that form."""
    command = f"python datasets/parse_passage_queries.py {dataset}"
    count = re.search(r"\.n(\d+)\.jsonl$", path.name)
    if count:
        command += f" --passages {count.group(1)}"
    model = re.fullmatch(rf"{RUN_PREFIX}-[^-]+-(.+)", path.parent.name)
    if model:
        command += f" --llm-model {model.group(1)}"
    return f"`{command}`"


def load_passage_queries(path: Path, ds: BeirDataset) -> list[tuple[str, str]]:
    """(query, doc id) pairs of a ``*_passage_queries.*.jsonl`` file of ``ds``; every line checked.

    A model trained on ``train-nodev`` refuses a file whose example queries came from another split
    (the dev queries may have been shown to the LLM)."""
    make = make_command(path, ds.name)
    if not path.is_file():
        raise DataError(f"{path}: no such file; make it with {make}")
    summary = path.with_suffix(".summary.json")
    if ds.split == TRAIN_NODEV and summary.is_file():
        shown = read_json(summary, f"make it anew with {make}").get("examples_split")
        if shown != TRAIN_NODEV:
            raise DataError(f"{summary}: the prompt showed example queries of {shown!r}, which holds dev "
                            f"queries; for a {TRAIN_NODEV} model move its folder away and make it anew "
                            f"with {make} (examples from {TRAIN_NODEV} by default)")
    pairs = []
    for line, rec in read_jsonl_numbered(path):
        for key in ("doc_id", "query"):
            if not isinstance(rec.get(key), str) or not rec[key].strip():
                raise DataError(f"{path}:{line}: passage-query record lacks a non-empty {key!r}")
        if rec["doc_id"] not in ds.corpus:
            raise DataError(f"{path}:{line}: doc_id {rec['doc_id']!r} is not in the {ds.name} corpus; was "
                            f"the file made for another dataset? ({make})")
        pairs.append((rec["query"], rec["doc_id"]))
    if not pairs:
        raise DataError(f"{path}: no passage queries (every answer was dropped? see its .summary.json); "
                        f"make them with {make}")
    return pairs
