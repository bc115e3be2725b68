"""BEIR datasets: fetch (download or link a local mirror) and load with validation.

The layout is BEIR's: ``corpus.jsonl[.gz]`` (``_id``, ``title``, ``text``), ``queries.jsonl``
(``_id``, ``text``) and ``qrels/<split>.tsv`` (header ``query-id corpus-id score``). Loading
checks what BEIR's ``GenericDataLoader`` takes on trust and names the file and line of any
problem: missing files, malformed JSON, records without ids, qrels ids absent from the corpus or
the queries, empty splits.
"""

from __future__ import annotations

import csv
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from syntriever.jsonl import DataError, read_jsonl_numbered
from syntriever.paths import check_name, dataset_dir, mirror_root

logger = logging.getLogger(__name__)

BEIR_URL = "https://public.ukp.informatik.tu-darmstadt.de/thakur/BEIR/datasets/{name}.zip"

Corpus = dict[str, dict[str, str]]
Qrels = dict[str, dict[str, int]]


@dataclass
class BeirDataset:
    """A loaded BEIR split: corpus, the split's queries, and its relevance judgements."""

    name: str
    split: str
    corpus: Corpus
    queries: dict[str, str]
    qrels: Qrels
    path: Path = field(default=Path("."))

    def passage_text(self, doc_id: str) -> str:
        """The paper's passage text: title + " " + text (title omitted when empty)."""
        return passage_text(self.corpus[doc_id])


def passage_text(doc: dict[str, str]) -> str:
    """Join a corpus record's title and text as the paper does."""
    title = (doc.get("title") or "").strip()
    text = (doc.get("text") or "").strip()
    return f"{title} {text}" if title else text


def _find(folder: Path, stem: str) -> Path:
    for candidate in (folder / stem, folder / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    raise DataError(f"{folder / stem}: file not found (nor {stem}.gz)")


def load_corpus(folder: Path) -> Corpus:
    """Read ``corpus.jsonl[.gz]`` into ``{doc_id: {"title", "text"}}``."""
    path = _find(folder, "corpus.jsonl")
    corpus: Corpus = {}
    for lineno, rec in read_jsonl_numbered(path):
        doc_id = rec.get("_id")
        if doc_id is None or str(doc_id) == "":
            raise DataError(f"{path}:{lineno}: record has no '_id'")
        if "text" not in rec:
            raise DataError(f"{path}:{lineno}: record (_id {doc_id}) has no 'text'")
        corpus[str(doc_id)] = {"title": rec.get("title") or "", "text": rec["text"] or ""}
    if not corpus:
        raise DataError(f"{path}: the corpus is empty")
    return corpus


def load_queries(folder: Path) -> dict[str, str]:
    """Read ``queries.jsonl[.gz]`` into ``{query_id: text}``."""
    path = _find(folder, "queries.jsonl")
    queries: dict[str, str] = {}
    for lineno, rec in read_jsonl_numbered(path):
        qid = rec.get("_id")
        if qid is None or str(qid) == "" or "text" not in rec:
            raise DataError(f"{path}:{lineno}: record needs '_id' and 'text'")
        queries[str(qid)] = rec["text"]
    return queries


def load_qrels(path: Path) -> Qrels:
    """Read a BEIR qrels TSV (CRLF or LF) into ``{query_id: {doc_id: score}}``."""
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    qrels: Qrels = {}
    with open(path, encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader, None)
        if header is None:
            raise DataError(f"{path}: empty file")
        if [h.strip() for h in header[:3]] != ["query-id", "corpus-id", "score"]:
            raise DataError(f"{path}:1: expected header 'query-id corpus-id score', got {header!r}")
        for lineno, row in enumerate(reader, 2):
            if not row or all(not c.strip() for c in row):
                continue
            if len(row) < 3:
                raise DataError(f"{path}:{lineno}: expected 3 tab-separated columns, got {len(row)}")
            qid, did, score = row[0].strip(), row[1].strip(), row[2].strip()
            try:
                value = int(float(score))
            except ValueError:
                raise DataError(f"{path}:{lineno}: score {score!r} is not a number") from None
            qrels.setdefault(qid, {})[did] = value
    return qrels


def load_dataset(name_or_path: str | Path, split: str = "test") -> BeirDataset:
    """Load and validate a BEIR dataset: a name under the data folder, or a folder path."""
    folder = Path(name_or_path)
    if not folder.is_dir():
        folder = dataset_dir(str(name_or_path))
    if not folder.is_dir():
        raise DataError(
            f"{folder}: dataset not found; fetch it first with "
            f"`python datasets/download.py {folder.name}`"
        )
    check_name(split, "split")
    corpus = load_corpus(folder)
    all_queries = load_queries(folder)
    qrels_path = folder / "qrels" / f"{split}.tsv"
    qrels = load_qrels(qrels_path)
    if not any(score >= 1 for docs in qrels.values() for score in docs.values()):
        raise DataError(f"{qrels_path}: split {split!r} has no relevant (score >= 1) judgements")
    for qid, docs in qrels.items():
        if qid not in all_queries:
            raise DataError(f"{qrels_path}: query id {qid!r} is not in {folder / 'queries.jsonl'}")
        for did in docs:
            if did not in corpus:
                raise DataError(f"{qrels_path}: corpus id {did!r} (query {qid}) is not in the corpus")
    queries = {qid: all_queries[qid] for qid in qrels}
    logger.info(
        "loaded %s/%s: %d docs, %d queries, %d judgements",
        folder.name, split, len(corpus), len(queries), sum(len(d) for d in qrels.values()),
    )
    return BeirDataset(folder.name, split, corpus, queries, qrels, folder)


def fetch_dataset(name: str, mirror: str | Path | None = None, *, copy: bool = False) -> Path:
    """Make dataset ``name`` available in the data folder and return its path.

    Uses the local mirror (argument, ``SYNTRIEVER_MIRROR``, or ``../shared/datasets``) when it
    holds the dataset, linking it (or copying with ``copy=True``); otherwise downloads BEIR's zip.
    """
    target = dataset_dir(name)
    if target.is_dir() and any(target.iterdir()):
        logger.info("%s already present at %s", name, target)
        return target
    source_root = Path(mirror).resolve() if mirror else mirror_root()
    source = source_root / name if source_root else None
    target.parent.mkdir(parents=True, exist_ok=True)
    if source is not None and source.is_dir():
        if target.is_symlink() or target.exists():
            target.unlink() if target.is_symlink() else target.rmdir()
        if copy:
            shutil.copytree(source, target)
        else:
            os.symlink(source, target, target_is_directory=True)
        logger.info("%s: %s from mirror %s", name, "copied" if copy else "linked", source)
        return target
    from beir import util  # imported late: only needed for downloads

    url = BEIR_URL.format(name=name)
    logger.info("downloading %s", url)
    try:
        util.download_and_unzip(url, str(target.parent))
    except Exception as err:  # network errors come in many types
        raise RuntimeError(
            f"could not download {url} ({err}); no local mirror holds {name!r} "
            "(set SYNTRIEVER_MIRROR or pass --mirror)"
        ) from err
    return target
