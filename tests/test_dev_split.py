"""The dev split: carved from train queries, seeded, stored, disjoint from what experiments train on."""

from __future__ import annotations

from pathlib import Path

import pytest

from syntriever import data, paths, result_files, tables
from syntriever.data import DEV, TRAIN_NODEV, carve_dev_split, load_dataset, load_qrels, write_qrels
from syntriever.errors import UserError
from syntriever.jsonl import DataError
from tests.test_data import make_dataset


def _train_qrels(n: int = 50) -> dict[str, dict[str, int]]:
    qrels = {f"q{i}": {f"d{i % 4}": 1} for i in range(n)}
    qrels["q_none"] = {"d0": 0}  # no relevant passage: never a dev query
    return qrels


def test_carve_is_seeded_disjoint_and_of_the_asked_share() -> None:
    rest, dev = carve_dev_split(_train_qrels(), 0.2, seed=0)
    assert len(dev) == 10 and "q_none" in rest
    assert set(rest).isdisjoint(dev) and set(rest) | set(dev) == set(_train_qrels())
    assert carve_dev_split(_train_qrels(), 0.2, seed=0)[1] == dev
    assert carve_dev_split(_train_qrels(), 0.2, seed=1)[1] != dev
    with pytest.raises(UserError, match="between 0 and 1"):  # one line from the script, no traceback
        carve_dev_split(_train_qrels(), 1.0)


def test_dev_and_train_nodev_splits_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = make_dataset(tmp_path)
    (folder / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td0\t1\nq2\td1\t1\n")
    monkeypatch.setattr(paths, "ROOT", tmp_path / "repo")
    with pytest.raises(DataError, match="make_dev_split.py toy"):
        load_dataset(folder, DEV)
    train = (folder / "qrels" / "train.tsv").rename(folder / "qrels" / "train.kept")
    # no train qrels: no carve to suggest
    with pytest.raises(DataError, match=r"toy has no dev split and no qrels/train.tsv to carve one from; "
                       r"use a split it has \(qrels: test\)"):
        load_dataset(folder, DEV)
    train.rename(folder / "qrels" / "train.tsv")
    write_qrels(data.carved_dev_path("toy"), {"q2": {"d1": 1}})
    assert load_qrels(data.carved_dev_path("toy")) == {"q2": {"d1": 1}}
    # the carved split is checked against the train qrels: without them, the error names train.tsv
    train = (folder / "qrels" / "train.tsv").rename(folder / "qrels" / "train.kept")
    with pytest.raises(DataError, match=r"train\.tsv: file not found: split 'dev' needs it"):
        load_dataset(folder, DEV)
    train.rename(folder / "qrels" / "train.tsv")
    dev, nodev = load_dataset(folder, DEV), load_dataset(folder, TRAIN_NODEV)
    assert dev.qrels == {"q2": {"d1": 1}} and list(dev.queries) == ["q2"]
    assert nodev.qrels == {"q1": {"d0": 1}} and list(nodev.queries) == ["q1"]
    # a carved split holding what train does not (a test query, another grade) is refused
    for stray in ({"q2": {"d1": 1}, "q9": {"d0": 1}}, {"q2": {"d1": 2}}):
        write_qrels(data.carved_dev_path("toy"), stray)
        line = 3 if "q9" in stray else 2
        with pytest.raises(DataError, match=rf"dev.tsv:{line}: query .*`git checkout .*make_dev_split"):
            load_dataset(folder, DEV)
    # a dataset's own dev qrels (MS MARCO) win over a carved split
    (folder / "qrels" / "dev.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td2\t1\n")
    assert load_dataset(folder, DEV).qrels == {"q1": {"d2": 1}}


def test_results_of_other_splits_stay_out_of_the_headline_table(tmp_path: Path) -> None:
    path = result_files.result_path
    assert path("scifact", "m", tmp_path) == tmp_path / "scifact" / "m.json"
    assert path("scifact", "m", tmp_path, "test") == tmp_path / "scifact" / "m.json"
    assert path("scifact", "m", tmp_path, "dev") == tmp_path / "scifact" / "dev" / "m.json"
    assert path("msmarco", "m", tmp_path, "dev") == tmp_path / "msmarco" / "m.json"
    per_query = {"NDCG@10": {"q1": 0.5, "q2": 0.7}}
    for split, model in (("test", "a"), ("dev", "b-nodev")):
        record = result_files.make_result(model, "scifact", {"NDCG@10": 0.6}, per_query, split=split)
        result_files.save_result(record, tmp_path)
    assert [r["model"] for r in result_files.load_results("scifact", tmp_path)] == ["a"]
    assert [r["model"] for r in result_files.load_results("scifact", tmp_path, "dev")] == ["b-nodev"]
    # dev-split experiment names take their paper row, but a dev table shows no paper (test) numbers
    assert tables.paper_row("minilm-labelled-nodev") == tables.paper_row("minilm-labelled")
    dev_rows = result_files.load_results("scifact", tmp_path, "dev")
    assert "paper nDCG@10" not in tables.markdown_table("scifact", dev_rows, n_resamples=50)
    test_rows = result_files.load_results("scifact", tmp_path)
    assert "paper nDCG@10" in tables.markdown_table("scifact", test_rows, n_resamples=50)


def test_committed_scifact_dev_split_is_a_fifth_of_train(scifact_dir: Path) -> None:
    dev = load_qrels(paths.ROOT / "splits" / "scifact" / "dev.tsv")
    train = load_qrels(scifact_dir / "qrels" / "train.tsv")
    assert carve_dev_split(train)[1] == dev  # the committed file is what the seeded carve gives
    assert len(dev) == round(0.2 * len(train))
