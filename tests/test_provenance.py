"""Command provenance: each artifact records its command, results gather the chain behind them."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from syntriever import paths, provenance, result_files, tables
from syntriever.provenance import CARD_NAME, command_chain, command_line, with_commands

ROOT = paths.ROOT


def test_command_line_of_a_repository_script() -> None:
    argv = [str(ROOT / "train_stage1.py"), "minilm", "scifact", "--output-name", "a b"]
    assert command_line(argv) == "python train_stage1.py minilm scifact --output-name 'a b'"
    nested = [str(ROOT / "stage2" / "parse_comparison.py"), "minilm-sft", "scifact"]
    assert command_line(nested) == "python stage2/parse_comparison.py minilm-sft scifact"


@pytest.mark.parametrize("argv", [["/usr/bin/pytest", "-q"], ["-c"], [], ["/tmp/elsewhere.py", "x"],
                                  [str(ROOT / ".venv" / "lib" / "site-packages" / "pytest" / "__main__.py")]])
def test_command_line_is_none_outside_the_scripts(argv: list[str]) -> None:
    assert command_line(argv) is None


def test_command_line_redacts_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-0123-4567-89ab")
    line = command_line([str(ROOT / "datasets" / "parse_synthetic.py"), "scifact", "--llm-base-url",
                         "http://u:sk-test-0123-4567-89ab@host/v1"])
    assert line is not None and "sk-test" not in line and "***" in line


@pytest.mark.parametrize("url", ["https://alice:hunter2secret@llm.example/v1",
                                 "https://llm.example/v1?api-key=hunter2secret&x=1",
                                 "https://llm.example/v1?foo=1&token=hunter2secret"])
def test_urls_lose_their_credentials_wherever_recorded(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from syntriever.llm.config import LLMConfig

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    recorded = LLMConfig(backend="online", model="gpt-4o", base_url=url).provenance()["base_url"]
    line = command_line([str(ROOT / "datasets" / "parse_synthetic.py"), "scifact", "--llm-base-url", url])
    for text in (recorded, line):
        assert text is not None and "hunter2secret" not in text and "llm.example/v1" in text


def _write(path: Path, record: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record))


def _pipeline_records(tmp: Path) -> dict:
    """The records a full run leaves: synthesis -> stage 1 -> retrieval -> comparisons -> stage 2."""
    gen, out = tmp / "generated", tmp / "output"
    _write(gen / "syn.summary.json", {"command": "python datasets/parse_synthetic.py toy"})
    _write(out / "m-sft" / CARD_NAME, {"synthetic_file": str(gen / "syn.jsonl"),
                                       "command": "python train_stage1.py m toy"})
    _write(gen / "retrieval.summary.json", {"model_path": str(out / "m-sft"),
                                            "command": "python retrieval.py m-sft toy"})
    _write(gen / "prefs.summary.json", {"retrieval_file": str(gen / "retrieval.jsonl"),
                                        "command": "python stage2/parse_comparison.py m-sft toy"})
    _write(out / "m-final" / CARD_NAME, {"base_model_path": str(out / "m-sft"),
                                         "preferences_file": str(gen / "prefs.jsonl"),
                                         "command": "python train_stage2.py m-sft toy"})
    return {"model_path": str(out / "m-final"), "command": "python evaluate.py m-final toy"}


def test_chain_walks_upstream_in_order_and_lists_each_command_once(tmp_path: Path) -> None:
    result = _pipeline_records(tmp_path)
    assert command_chain(result) == [
        "python datasets/parse_synthetic.py toy",
        "python train_stage1.py m toy",  # reached twice (retrieval and base model), listed once
        "python retrieval.py m-sft toy",
        "python stage2/parse_comparison.py m-sft toy",
        "python train_stage2.py m-sft toy",
        "python evaluate.py m-final toy",
    ]


def test_chain_stops_where_records_are_missing(tmp_path: Path) -> None:
    result = _pipeline_records(tmp_path)
    (tmp_path / "generated" / "retrieval.summary.json").unlink()
    (tmp_path / "generated" / "syn.summary.json").write_text(json.dumps({"queries": 3}))  # no command
    assert command_chain(result) == [
        "python train_stage1.py m toy",
        "python stage2/parse_comparison.py m-sft toy",
        "python train_stage2.py m-sft toy",
        "python evaluate.py m-final toy",
    ]
    assert command_chain({"model_path": "bm25s (English stop words)", "command": None}) == []


def test_records_store_their_chain_when_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(provenance, "ROOT", tmp_path)  # a clone of the repository elsewhere
    monkeypatch.setattr(paths, "ROOT", tmp_path)
    gen, out = tmp_path / "generated", tmp_path / "output"

    def run(record: Path, script: str, *args: str, **inputs: Path) -> None:  # a stage script writes
        monkeypatch.setattr(sys, "argv", [str(tmp_path / script), *args])
        _write(record, with_commands({key: paths.portable(path) for key, path in inputs.items()}))

    run(gen / "syn.summary.json", "datasets/parse_synthetic.py", "toy")
    run(out / "m-sft" / CARD_NAME, "train_stage1.py", "m", "toy", synthetic_file=gen / "syn.jsonl")
    run(gen / "retrieval.summary.json", "retrieval.py", "m-sft", "toy", model_path=out / "m-sft")
    run(gen / "prefs.summary.json", "stage2/parse_comparison.py", "m-sft", "toy",
        retrieval_file=gen / "retrieval.jsonl")
    run(out / "m-final" / CARD_NAME, "train_stage2.py", "m-sft", "toy", base_model_path=out / "m-sft",
        preferences_file=gen / "prefs.jsonl")
    card = json.loads((out / "m-final" / CARD_NAME).read_text())
    assert card["preferences_file"] == "generated/prefs.jsonl"  # relative to the repository
    expected = ["python datasets/parse_synthetic.py toy", "python train_stage1.py m toy",
                "python retrieval.py m-sft toy", "python stage2/parse_comparison.py m-sft toy",
                "python train_stage2.py m-sft toy"]
    assert card["commands"] == expected
    # a later run rewrites an upstream summary: the trained models still name what made them
    run(gen / "syn.summary.json", "datasets/parse_synthetic.py", "toy", "--limit", "5")
    monkeypatch.setattr(sys, "argv", [str(tmp_path / "evaluate.py"), "m-final", "toy"])
    result = with_commands({"model_path": paths.portable(out / "m-final")})
    assert result["model_path"] == "output/m-final"
    assert result["commands"] == [*expected, "python evaluate.py m-final toy"]


def test_portable_paths() -> None:
    assert paths.portable(ROOT / "output" / "m-sft") == "output/m-sft"
    assert paths.portable("intfloat/e5-base-v2") == "intfloat/e5-base-v2"  # a hub id, not a path
    assert paths.portable("/opt/models/e5") == "/opt/models/e5"


def test_chain_refuses_a_cycle(tmp_path: Path) -> None:
    _write(tmp_path / "a" / CARD_NAME, {"base_model_path": str(tmp_path / "b"), "command": "a"})
    _write(tmp_path / "b" / CARD_NAME, {"base_model_path": str(tmp_path / "a"), "command": "b"})
    with pytest.raises(ValueError, match="cycle"):
        command_chain({"model_path": str(tmp_path / "a")})


def _result(model: str, commands: list[str]) -> dict:
    per_query = {f"q{i}": float(v) for i, v in enumerate(np.linspace(0.2, 0.8, 10))}
    metrics = {m: 0.5 for m in tables.TABLE_METRICS}
    return result_files.make_result(model, "scifact", metrics, {"NDCG@10": per_query}, commands=commands)


def test_table_lists_each_rows_commands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(paths, "results_root", lambda: tmp_path)
    stage1 = ["python datasets/parse_synthetic.py scifact", "python train_stage1.py minilm scifact"]
    result_files.save_result(_result("minilm-sft", [*stage1, "python evaluate.py minilm-sft scifact"]))
    result_files.save_result(_result("minilm-final", [
        *stage1, "python retrieval.py minilm-sft scifact", "python train_stage2.py minilm-sft scifact",
        "python evaluate.py minilm-final scifact"]))
    result_files.save_result(_result("bm25", []))  # a result file from before commands were recorded
    text = tables.write_table("scifact", n_resamples=50).read_text()
    block = text.split("## Commands that produced these results")[1].split("```bash\n")[1].split("```")[0]
    assert block.splitlines() == [
        "python datasets/download.py scifact",
        "# bm25: no command recorded in its result file",
        *stage1,
        "python evaluate.py minilm-sft scifact",
        "python retrieval.py minilm-sft scifact",
        "python train_stage2.py minilm-sft scifact",
        "python evaluate.py minilm-final scifact",
    ]


def test_result_commands_must_be_strings() -> None:
    record = _result("minilm", ["python evaluate.py minilm scifact"])
    record["commands"] = [3]
    with pytest.raises(result_files.DataError, match="commands"):
        result_files.validate_result(record, "x.json")
