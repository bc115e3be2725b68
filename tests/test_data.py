"""The BEIR loader validates its input and names the file and line of every problem."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from syntriever.data import fetch_dataset, load_dataset, passage_text
from syntriever.errors import UserError
from syntriever.jsonl import DataError, JsonlAppender, read_jsonl, write_jsonl
from syntriever.paths import check_name, dataset_dir


def make_dataset(root: Path, *, gz: bool = False) -> Path:
    folder = root / "toy"
    (folder / "qrels").mkdir(parents=True)
    docs = [{"_id": f"d{i}", "title": f"T{i}", "text": f"text {i}"} for i in range(4)]
    corpus = "".join(json.dumps(d) + "\n" for d in docs)
    if gz:
        with gzip.open(folder / "corpus.jsonl.gz", "wt") as fh:
            fh.write(corpus)
    else:
        (folder / "corpus.jsonl").write_text(corpus)
    queries = [{"_id": "q1", "text": "first"}, {"_id": "q2", "text": "second"}]
    (folder / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries))
    (folder / "qrels" / "test.tsv").write_bytes(b"query-id\tcorpus-id\tscore\r\nq1\td0\t1\r\nq2\td3\t2\r\n")
    return folder


def test_loads_valid_dataset_with_crlf_and_gzip(tmp_path: Path) -> None:
    ds = load_dataset(make_dataset(tmp_path, gz=True), "test")
    assert len(ds.corpus) == 4
    assert ds.queries == {"q1": "first", "q2": "second"}
    assert ds.qrels == {"q1": {"d0": 1}, "q2": {"d3": 2}}
    assert ds.passage_text("d1") == "T1 text 1"
    assert passage_text({"title": "", "text": "only"}) == "only"


def test_missing_file(tmp_path: Path) -> None:
    folder = make_dataset(tmp_path)
    (folder / "queries.jsonl").unlink()
    with pytest.raises(DataError, match=r"queries\.jsonl: file not found"):
        load_dataset(folder, "test")


def test_missing_split(tmp_path: Path) -> None:
    folder = make_dataset(tmp_path)
    with pytest.raises(DataError, match=r"qrels/train\.tsv: file not found: split 'train' needs it; .* has "
                       r"qrels for test \("):
        load_dataset(folder, "train")
    # train-nodev of a dataset without train qrels: the train file is what is missing, not a dev split
    with pytest.raises(DataError, match=r"qrels/train\.tsv: file not found: split 'train-nodev' needs it"):
        load_dataset(folder, "train-nodev")


def test_malformed_json_line_names_file_and_line(tmp_path: Path) -> None:
    folder = make_dataset(tmp_path)
    with open(folder / "corpus.jsonl", "a") as fh:
        fh.write('{"_id": "d9", "text": \n')
    with pytest.raises(DataError, match=r"corpus\.jsonl:5: malformed JSON"):
        load_dataset(folder, "test")


def test_record_without_id(tmp_path: Path) -> None:
    folder = make_dataset(tmp_path)
    (folder / "queries.jsonl").write_text('{"_id": "q1", "text": "a"}\n\n{"text": "b"}\n')
    with pytest.raises(DataError, match=r"queries\.jsonl:3: record needs '_id'"):
        load_dataset(folder, "test")


def test_qrels_query_absent_from_queries(tmp_path: Path) -> None:
    folder = make_dataset(tmp_path)
    with open(folder / "qrels" / "test.tsv", "ab") as fh:
        fh.write(b"q7\td1\t1\r\n")
    with pytest.raises(DataError, match=r"query id 'q7' is not in"):
        load_dataset(folder, "test")


def test_qrels_doc_absent_from_corpus(tmp_path: Path) -> None:
    folder = make_dataset(tmp_path)
    with open(folder / "qrels" / "test.tsv", "ab") as fh:
        fh.write(b"q1\tnope\t1\r\n")
    with pytest.raises(DataError, match=r"corpus id 'nope' \(query q1\) is not in the corpus"):
        load_dataset(folder, "test")


def test_bad_qrels_header_and_rows(tmp_path: Path) -> None:
    folder = make_dataset(tmp_path)
    qrels = folder / "qrels" / "test.tsv"
    qrels.write_text("qid\tdid\tscore\nq1\td0\t1\n")
    with pytest.raises(DataError, match=r"test\.tsv:1: expected header"):
        load_dataset(folder, "test")
    qrels.write_text("query-id\tcorpus-id\tscore\nq1\td0\n")
    with pytest.raises(DataError, match=r"test\.tsv:2: expected 3 tab-separated columns"):
        load_dataset(folder, "test")
    qrels.write_text("query-id\tcorpus-id\tscore\nq1\td0\thigh\n")
    with pytest.raises(DataError, match=r"test\.tsv:2: score 'high' is not a number"):
        load_dataset(folder, "test")


def test_empty_split(tmp_path: Path) -> None:
    folder = make_dataset(tmp_path)
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n")
    with pytest.raises(DataError, match="no relevant"):
        load_dataset(folder, "test")
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td0\t0\n")
    with pytest.raises(DataError, match="no relevant"):
        load_dataset(folder, "test")


def test_empty_corpus(tmp_path: Path) -> None:
    folder = make_dataset(tmp_path)
    (folder / "corpus.jsonl").write_text("")
    with pytest.raises(DataError, match="corpus is empty"):
        load_dataset(folder, "test")


@pytest.mark.parametrize("name", ["../etc", "a/b", "..", "/abs", "", ".hidden", "x" * 200])
def test_dataset_names_cannot_escape(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNTRIEVER_DATA", str(tmp_path))
    with pytest.raises(ValueError, match="invalid dataset name"):
        dataset_dir(name)
    with pytest.raises(ValueError):
        load_dataset(name + "-does-not-exist" if name == "" else name, "test")


def test_check_name_accepts_plain_names() -> None:
    for name in ("scifact", "cqadupstack.android", "msmarco-v2", "nfcorpus_1"):
        assert check_name(name) == name


def test_fetch_links_from_mirror(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mirror = tmp_path / "mirror"
    make_dataset(mirror)
    monkeypatch.setenv("SYNTRIEVER_DATA", str(tmp_path / "data"))
    path = fetch_dataset("toy", mirror)
    assert path.is_symlink()
    assert len(load_dataset("toy", "test").queries) == 2
    assert fetch_dataset("toy", mirror) == path  # second call reuses it
    # a missing mirror, and a mirror folder that is not a BEIR dataset: refused, nothing linked
    with pytest.raises(UserError, match="mirror .*/nowhere: no such folder"):
        fetch_dataset("other", tmp_path / "nowhere")
    (mirror / "empty").mkdir()
    with pytest.raises(DataError, match=r"mirror/empty: not a BEIR dataset \(it needs corpus.jsonl"):
        fetch_dataset("empty", mirror)
    assert not (tmp_path / "data" / "empty").exists()


def test_jsonl_torn_tail_and_appender_repair(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    write_jsonl(path, [{"a": 1}, {"a": 2}])
    with open(path, "a") as fh:
        fh.write('{"a": 3, "b"')  # a crash mid-write
    with pytest.raises(DataError, match=r"out\.jsonl:3: malformed JSON"):
        list(read_jsonl(path))
    assert [r["a"] for r in read_jsonl(path, drop_torn_tail=True)] == [1, 2]
    with JsonlAppender(path) as out:
        out.append({"a": 4})
    assert [r["a"] for r in read_jsonl(path)] == [1, 2, 4]


def test_jsonl_rejects_non_objects(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_text('{"a": 1}\n[1, 2]\n')
    with pytest.raises(DataError, match=r"x\.jsonl:2: expected a JSON object"):
        list(read_jsonl(path))


def test_atomic_writes_get_ordinary_permissions(tmp_path: Path) -> None:
    import os

    old = os.umask(0o022)
    try:
        write_jsonl(tmp_path / "a.jsonl", [{"a": 1}])
    finally:
        os.umask(old)
    assert (tmp_path / "a.jsonl").stat().st_mode & 0o777 == 0o644
    assert not list(tmp_path.glob(".*.tmp"))
