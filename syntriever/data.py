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
import random
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from syntriever.errors import UserError
from syntriever.jsonl import DataError, read_jsonl_numbered, write_bytes
from syntriever.paths import check_name, dataset_dir, mirror_root, splits_root

logger = logging.getLogger(__name__)

BEIR_URL = "https://public.ukp.informatik.tu-darmstadt.de/thakur/BEIR/datasets/{name}.zip"
# the datasets BEIR_URL serves (the BEIR benchmark's public ones)
BEIR_DATASETS = ("msmarco", "trec-covid", "nfcorpus", "nq", "hotpotqa", "fiqa", "arguana", "webis-touche2020",
                 "cqadupstack", "quora", "dbpedia-entity", "scidocs", "fever", "climate-fever", "scifact")

Corpus = dict[str, dict[str, str]]
Qrels = dict[str, dict[str, int]]

# Choices (prompts, filters, thresholds, loss options, epochs) are made on a dev split. BEIR gives
# one for few datasets, so a fixed, seeded share of the train queries is carved out and stored in
# the repository (``splits/<dataset>/dev.tsv``, written by ``datasets/make_dev_split.py``).
# Experiments train on ``train-nodev`` (train without the dev queries) and are scored on ``dev``;
# final models train on the full ``train`` split and are scored on the test split.
DEV = "dev"
TRAIN_NODEV = "train-nodev"
DEV_SHARE = 0.2
DEV_SEED = 0
# The split a dataset's headline numbers are reported on (BEIR: test; MS MARCO: dev).
HEADLINE_SPLITS = {"msmarco": "dev"}


def headline_split(dataset: str) -> str:
    """The split of a dataset's headline table: ``test``, or ``dev`` for MS MARCO."""
    return HEADLINE_SPLITS.get(dataset, "test")


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


def _string_field(rec: dict, key: str, where: str, *, required: bool = True) -> str:
    """``rec[key]`` as a string; a missing (when required) or non-string value is a DataError."""
    value = rec.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        found = "missing" if key not in rec else f"a {type(value).__name__} ({value!r:.40})"
        raise DataError(f"{where}: {key!r} must be a string, found {found}")
    return value


def _check_unique(seen: dict[str, int], key: str, path: Path, lineno: int) -> None:
    if key in seen:
        raise DataError(f"{path}:{lineno}: duplicate _id {key!r} (first on line {seen[key]})")
    seen[key] = lineno


def load_corpus(folder: Path) -> Corpus:
    """Read ``corpus.jsonl[.gz]`` into ``{doc_id: {"title", "text"}}``; ``_id`` and ``text``
    must be strings (``title`` too when present) and every ``_id`` unique."""
    path = _find(folder, "corpus.jsonl")
    corpus: Corpus = {}
    lines: dict[str, int] = {}
    for lineno, rec in read_jsonl_numbered(path):
        where = f"{path}:{lineno}"
        if rec.get("_id") in (None, ""):
            raise DataError(f"{where}: record has no '_id'")
        doc_id = _string_field(rec, "_id", where)
        if "text" not in rec:
            raise DataError(f"{where}: record (_id {doc_id}) has no 'text'")
        text = _string_field(rec, "text", where, required=False)
        title = _string_field(rec, "title", where, required=False)
        _check_unique(lines, doc_id, path, lineno)
        corpus[doc_id] = {"title": title, "text": text}
    if not corpus:
        raise DataError(f"{path}: the corpus is empty")
    return corpus


def load_queries(folder: Path) -> dict[str, str]:
    """Read ``queries.jsonl[.gz]`` into ``{query_id: text}`` (string ``_id`` and ``text``,
    unique ids)."""
    path = _find(folder, "queries.jsonl")
    queries: dict[str, str] = {}
    lines: dict[str, int] = {}
    for lineno, rec in read_jsonl_numbered(path):
        where = f"{path}:{lineno}"
        if rec.get("_id") in (None, "") or "text" not in rec:
            raise DataError(f"{where}: record needs '_id' and 'text'")
        qid = _string_field(rec, "_id", where)
        text = _string_field(rec, "text", where)
        _check_unique(lines, qid, path, lineno)
        queries[qid] = text
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
            qrels.setdefault(qid, {})[did] = _score(score, f"{path}:{lineno}")
    return qrels


def check_limit(limit: int | None) -> None:
    """Refuse a ``--limit`` below 1 (0 would select nothing, a negative one all but the last)."""
    if limit is not None and limit < 1:
        raise UserError(f"--limit must be at least 1, got {limit}")


def relevant_query_ids(qrels: Qrels) -> list[str]:
    """The queries of ``qrels`` with at least one relevant (score >= 1) passage, in file order."""
    return [qid for qid, docs in qrels.items() if any(s >= 1 for s in docs.values())]


def training_queries(ds: BeirDataset, limit: int | None = None) -> dict[str, str]:
    """Train-split queries with at least one relevant passage, in file order (first ``limit``)."""
    qids = relevant_query_ids(ds.qrels)
    check_limit(limit)
    if limit is not None:
        qids = qids[:limit]
    return {qid: ds.queries[qid] for qid in qids}


def carved_dev_path(dataset: str) -> Path:
    """Where the repository stores the dev split carved from ``dataset``'s train queries."""
    return splits_root() / check_name(dataset) / f"{DEV}.tsv"


def split_qrels(folder: Path, split: str) -> tuple[Qrels, Path]:
    """The qrels of ``split`` and the file they came from.

    ``dev`` is the dataset's own ``qrels/dev.tsv`` when it has one, else the split carved from its
    train queries (:func:`carved_dev_path`); ``train-nodev`` is ``train`` without the dev queries.
    """
    if split == DEV:
        return _dev_qrels(folder)
    if split == TRAIN_NODEV:
        train_path = _qrels_file(folder, "train", split)
        train = load_qrels(train_path)
        dev, _ = _dev_qrels(folder, train)
        return {q: d for q, d in train.items() if q not in dev}, train_path
    own = _qrels_file(folder, split, split)
    return load_qrels(own), own


def _qrels_file(folder: Path, name: str, split: str) -> Path:
    """``qrels/<name>.tsv`` of ``folder``, which ``split`` reads; a one-line error naming the
    splits the dataset has when it is missing."""
    path = folder / "qrels" / f"{name}.tsv"
    if not path.is_file():
        raise DataError(f"{path}: file not found: split {split!r} needs it; {folder.name} has qrels for "
                        f"{_qrels_names(folder) or 'no split'} (`python datasets/download.py {folder.name}` "
                        "fetches a whole BEIR dataset)")
    return path


def _qrels_names(folder: Path) -> str:
    """The splits ``folder`` has qrels files for, comma-separated ("" for none)."""
    return ", ".join(sorted(p.stem for p in (folder / "qrels").glob("*.tsv")))


def _dev_qrels(folder: Path, train: Qrels | None = None) -> tuple[Qrels, Path]:
    """The dataset's own dev qrels, else the split carved from its train qrels (``train``, else
    read), checked against them; and the file they came from."""
    own = folder / "qrels" / f"{DEV}.tsv"
    if own.is_file():
        return load_qrels(own), own
    carved = carved_dev_path(folder.name)
    if not carved.is_file() and not (folder / "qrels" / "train.tsv").is_file():
        raise DataError(f"{carved}: {folder.name} has no dev split and no qrels/train.tsv to carve one from; "
                        f"use a split it has (qrels: {_qrels_names(folder) or 'none'})")
    if not carved.is_file():
        raise DataError(
            f"{carved}: {folder.name} has no dev split; carve one from its train queries with "
            f"`python datasets/make_dev_split.py {folder.name}`"
        )
    dev = load_qrels(carved)
    train = train if train is not None else load_qrels(_qrels_file(folder, "train", DEV))
    stray = [q for q in dev if not dev[q].items() <= train.get(q, {}).items()]  # not from train
    if stray:
        rows = carved.read_text(encoding="utf-8").splitlines()
        line = next(i for i, row in enumerate(rows, 1) if row.split("\t")[0] == stray[0])
        raise DataError(f"{carved}:{line}: query {stray[0]!r} is not judged so in the train qrels, "
                        f"which the dev split is carved from; restore it with `git checkout {carved}`, "
                        f"or delete it and carve it again: `python datasets/make_dev_split.py "
                        f"{folder.name}`")
    return dev, carved


def carve_dev_split(
    train_qrels: Qrels, share: float = DEV_SHARE, seed: int = DEV_SEED
) -> tuple[Qrels, Qrels]:
    """Split train qrels into (train-nodev, dev): a seeded random ``share`` of the queries with a
    relevant passage goes to dev, the rest (and queries without one) stay for training."""
    if not 0 < share < 1:
        raise UserError(f"dev share must be between 0 and 1, got {share}")
    relevant = relevant_query_ids(train_qrels)
    count = round(share * len(relevant))
    if count == 0 or count == len(relevant):
        raise UserError(f"a dev share of {share} of {len(relevant)} queries leaves one side empty")
    dev_ids = set(random.Random(seed).sample(sorted(relevant), count))
    dev = {q: d for q, d in train_qrels.items() if q in dev_ids}
    rest = {q: d for q, d in train_qrels.items() if q not in dev_ids}
    return rest, dev


def write_qrels(path: Path, qrels: Qrels) -> None:
    """Write qrels as a BEIR TSV (header, LF line endings), atomically."""
    lines = ["query-id\tcorpus-id\tscore"]
    lines += [f"{q}\t{d}\t{s}" for q, docs in qrels.items() for d, s in docs.items()]
    write_bytes(path, ("\n".join(lines) + "\n").encode("utf-8"))


def _score(text: str, where: str) -> int:
    """A qrels relevance grade: a non-negative integer ("2" or "2.0"; not 0.5, -1, inf)."""
    try:
        value = float(text)
    except ValueError:
        raise DataError(f"{where}: score {text!r} is not a number") from None
    if not value.is_integer() or value < 0:
        raise DataError(f"{where}: score {text!r} is not a non-negative integer relevance grade "
                        "(BEIR qrels: 0 not relevant, 1, 2, ... relevant)")
    return int(value)


def load_dataset(name_or_path: str | Path, split: str = "test") -> BeirDataset:
    """Load and validate a BEIR dataset split: a name under the data folder, or a folder path.

    Besides the dataset's own splits, ``dev`` and ``train-nodev`` (see :func:`split_qrels`)."""
    folder = Path(name_or_path)
    if not folder.is_dir():
        folder = dataset_dir(str(name_or_path))
    if not folder.is_dir():
        raise DataError(
            f"{folder}: dataset not found; fetch it first with "
            f"`python datasets/download.py {folder.name}`"
        )
    # the folder's name names its result files: refuse a bad one before any work is done
    check_name(folder.name, f"dataset (folder {folder}; rename it)")
    check_name(split, "split")
    corpus = load_corpus(folder)
    all_queries = load_queries(folder)
    qrels, qrels_path = split_qrels(folder, split)
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


def check_available(name: str, mirror: str | Path | None = None) -> None:
    """Raise :class:`DataError` unless dataset ``name`` is in the data folder, in the mirror, or
    one BEIR serves for download (so a misspelt name fails before any step runs)."""
    target = dataset_dir(name)
    source_root = Path(mirror).resolve() if mirror else mirror_root()
    in_mirror = source_root is not None and (source_root / name).is_dir()
    if target.is_dir() or in_mirror or name in BEIR_DATASETS:
        return
    raise DataError(
        f"{name!r}: no dataset at {target}, none in the mirror {source_root}, and not one of the BEIR "
        f"datasets that can be downloaded ({', '.join(BEIR_DATASETS)}); check the name, or put a "
        f"BEIR-layout folder (corpus.jsonl, queries.jsonl, qrels/) at {target}"
    )


def fetch_dataset(name: str, mirror: str | Path | None = None, *, copy: bool = False) -> Path:
    """Make dataset ``name`` available in the data folder and return its path.

    Uses the local mirror (argument, ``SYNTRIEVER_MIRROR``, or ``../shared/datasets``) when it
    holds the dataset, linking it (or copying with ``copy=True``); otherwise downloads BEIR's zip.
    """
    target = dataset_dir(name)
    if target.is_dir() and any(target.iterdir()):
        logger.info("%s already present at %s", name, target)
        return target
    if mirror and not Path(mirror).is_dir():
        raise UserError(f"mirror {mirror}: no such folder")
    source_root = Path(mirror).resolve() if mirror else mirror_root()
    source = source_root / name if source_root else None
    target.parent.mkdir(parents=True, exist_ok=True)
    if source is not None and source.is_dir():
        if not any(source.glob("corpus.jsonl*")) or not any((source / "qrels").glob("*.tsv")):
            raise DataError(f"{source}: not a BEIR dataset (it needs corpus.jsonl and qrels/*.tsv); fix the "
                            f"mirror, or move it away to download {name}")
        if target.is_symlink() or target.exists():
            target.unlink() if target.is_symlink() else target.rmdir()
        if copy:
            shutil.copytree(source, target)
        else:
            os.symlink(source, target, target_is_directory=True)
        logger.info("%s: %s from mirror %s", name, "copied" if copy else "linked", source)
        return target
    check_available(name, mirror)
    from beir import util  # imported late: only needed for downloads

    url = BEIR_URL.format(name=name)
    logger.info("downloading %s", url)
    try:
        util.download_and_unzip(url, str(target.parent))
    except Exception as err:  # network errors come in many types
        raise UserError(f"could not download {url} ({type(err).__name__}: {err}); no local mirror holds "
                        f"{name!r} (set SYNTRIEVER_MIRROR or pass --mirror)") from None
    return target
