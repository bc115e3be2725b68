"""Names and folders of trained models: one rule, used by the train scripts, the pipeline,
the encoder lookup and the tables."""

from __future__ import annotations

from pathlib import Path

import pytest

from syntriever import names, tables
from syntriever.encoders import trained_path
from syntriever.stage1 import Stage1Variant


def test_stage1_and_final_names() -> None:
    assert names.stage1_name("minilm") == "minilm-sft"
    assert names.stage1_name("intfloat/e5-base-v2") == "intfloat__e5-base-v2-sft"
    assert names.stage1_name("minilm", Stage1Variant(use_cot=False).suffix()) == "minilm-sft-nocot"
    assert names.stage1_name("minilm", Stage1Variant(use_cot=False, use_synthetic=False).suffix()) == (
        "minilm-labelled"
    )
    assert names.stage1_name("minilm", nodev=True) == "minilm-sft-nodev"
    assert names.final_name("minilm-sft") == "minilm-final"
    assert names.final_name("minilm-sft", "bt") == "minilm-final-bt"
    assert names.without_nodev("minilm-sft-nodev") == "minilm-sft"


def test_every_name_finds_its_paper_row() -> None:
    variants = [Stage1Variant(use_cot=False), Stage1Variant(use_synthetic=False),
                Stage1Variant(use_verification=False), Stage1Variant(negative_filter="copies")]
    rows = [tables.paper_row(names.stage1_name("minilm", v.suffix())) for v in variants]
    assert rows == [tables.SYN_ONLY, tables.COT_ONLY, tables.NOVERIFY_SFT, tables.NEGFILTER_SFT]
    assert tables.paper_row(names.final_name("minilm-sft", "bt")) == tables.BT


def test_model_dir_is_where_the_encoder_lookup_finds_a_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SYNTRIEVER_OUTPUT", str(tmp_path))
    folder = names.model_dir("minilm-sft", "scifact")
    assert folder == tmp_path / "minilm-sft-scifact"
    assert trained_path("minilm-sft", "scifact") is None  # nothing saved yet
    folder.mkdir()
    (folder / "modules.json").write_text("[]")
    assert trained_path("minilm-sft", "scifact") == folder
    with pytest.raises(ValueError):
        names.model_dir("../escape", "scifact")
