"""Names and folders of trained models: one rule, used by the train scripts, the pipeline,
the encoder lookup and the tables."""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path

import pytest

from syntriever import names, tables
from syntriever.encoders import trained_path
from syntriever.errors import UserError
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
    assert [names.name_split(n) for n in ("minilm-sft-nodev", "minilm-sft", "minilm-nodevx-sft")] == [
        "train-nodev", "train", "train"]


def test_every_name_finds_its_paper_row() -> None:
    variants = [Stage1Variant(use_cot=False), Stage1Variant(use_synthetic=False),
                Stage1Variant(use_verification=False), Stage1Variant(negative_filter="copies")]
    rows = [tables.paper_row(names.stage1_name("minilm", v.suffix())) for v in variants]
    assert rows == [tables.SYN_ONLY, tables.COT_ONLY, tables.NOVERIFY_SFT, tables.NEGFILTER_SFT]
    assert tables.paper_row(names.final_name("minilm-sft", "bt")) == tables.BT
    thenlab = names.stage1_name("minilm", Stage1Variant(labelled_weight=1, then_labelled=3).suffix())
    assert tables.paper_row(thenlab) == tables.THEN_LABELLED_SFT
    assert tables.paper_row(names.final_name(thenlab)) == tables.SYNTRIEVER  # the pipeline's stage 2
    assert tables.paper_row(names.final_name(thenlab, teacher="oracle")) == tables.STAGE2_OTHER
    assert tables.paper_row("minilm-labelled-L256-final-oracle-nodev") == tables.STAGE2_OTHER
    likelihood = names.final_name(thenlab, "bt", "likelihood-retriever")
    assert tables.paper_row(likelihood) == tables.STAGE2_LIKELIHOOD
    assert tables.paper_row("minilm-labelled-L256-6ep") == tables.E5_FT
    ablations = [names.stage1_name("minilm", Stage1Variant(labelled_weight=1, then_labelled=3,
                                                           **off).suffix())
                 for off in ({"use_synthetic": False}, {"use_cot": False}, {"use_verification": False})]
    assert [tables.paper_row(n) for n in ablations] == [tables.COT_ONLY_THEN, tables.SYN_ONLY_THEN,
                                                       tables.NOVERIFY_THEN]
    assert tables.paper_row("minilm-sft-L256-nosyn-pull1-thenlab3-bf16") == tables.COT_ONLY_THEN
    assert tables.paper_row("minilm-sft-L256-noverify-pull1-negrelated-thenlab3-bf16") == tables.NOVERIFY_THEN
    # the stage 1 itself, and the same on v2 data (unverified, as the 1.5B model cannot verify)
    not_ablations = ("minilm-sft-L256-pull1-negrelated-thenlab3-bf16",
                     "minilm-sft-v2-qwen1.5b-L256-pull1-negrelated-noverify-thenlab3-bf16-nodev")
    assert [tables.paper_row(n) for n in not_ablations] == [tables.THEN_LABELLED_SFT] * 2
    assert tables.paper_row("minilm-sft-L256-bf16") == tables.STAGE1
    assert tables.paper_row("minilm-sft-Lfm2") is None  # a tag starting with L is not a max length


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


STAGE1_FLAGS = [
    [], ["--no-cot"], ["--no-synthetic"], ["--no-verify"], ["--no-cot", "--no-verify"], ["--labelled-only"],
    *(["--filter-negatives", f] for f in names.NEGATIVE_FILTERS), ["--labelled-weight", "0.5"],
    ["--negatives", "related"],
    ["--filter-negatives", "coverage", "--labelled-weight", "1e-05", "--negatives", "related"],
    ["--then-labelled", "1.5"], ["--labelled-weight", "1", "--negatives", "related", "--then-labelled", "3"],
    ["--labelled-only", "--then-labelled", "3"],  # refused: nothing before the labelled epochs
]
DATA_FLAGS = [[], ["--prompt-version", "v2"], ["--llm-model", "qwen1.5b"],
              ["--prompt-version", "v2", "--llm-model", "qwen1.5b"], ["--llm-model", "gpt-4o"]]
SPLIT_FLAGS = [[], ["--train-split", "train-nodev"]]


def stage1_default_names() -> list[str]:
    """Every default name train_stage1.py gives (two encoders, each valid flag combination)."""
    import train_stage1

    parser, out = train_stage1.build_parser(), []
    for encoder in ("minilm", "intfloat/e5-base-v2"):
        for flags in STAGE1_FLAGS:
            for data in DATA_FLAGS:
                for split in SPLIT_FLAGS:
                    args = parser.parse_args([encoder, "scifact", *flags, *data, *split])
                    with contextlib.suppress(ValueError, UserError):  # combinations the script refuses
                        out.append(train_stage1.default_name(args))
    return sorted(set(out))


def test_every_default_stage1_name_reads_back_into_its_command() -> None:
    import train_stage1

    parser, checked = train_stage1.build_parser(), stage1_default_names()
    assert len(checked) > 100
    for name in checked:
        command = names.train_command(name, "scifact")
        assert command is not None and command.startswith("python train_stage1.py "), name
        argv = command.split()[2:]
        assert argv[1] == "scifact" and train_stage1.default_name(parser.parse_args(argv)) == name, command


def test_every_default_stage2_name_reads_back_into_its_command(tmp_path: Path) -> None:
    import train_stage2
    from syntriever.stage2 import stage1_split

    parser, count = train_stage2.build_parser(), 0
    for stage1 in stage1_default_names():
        for teacher in (*names.TEACHERS, "oracle-flip-4pct", "oracle-flip-2.5pct"):
            for loss in names.STAGE2_LOSSES:
                args = parser.parse_args([stage1, "scifact", "--teacher", teacher, "--loss", loss])
                name = train_stage2.default_name(args, stage1_split(stage1, tmp_path / "no-card"))
                command = names.train_command(name, "scifact")
                assert command is not None and command.startswith("python train_stage2.py "), name
                again = parser.parse_args(command.split()[2:])
                assert train_stage2.default_name(again, stage1_split(again.model, tmp_path)) == name, command
                count += 1
    assert count > 1000


def test_names_record_the_synthetic_data_and_custom_names_have_no_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from syntriever.encoders import open_encoder

    assert names.stage1_name("minilm", llm_model="qwen0.5b", prompt_version="v1") == "minilm-sft"
    assert names.stage1_name("minilm", llm_model="qwen1.5b", prompt_version="v2") == "minilm-sft-v2-qwen1.5b"
    assert names.stage1_name("minilm", names.LABELLED, llm_model="qwen1.5b") == "minilm-labelled"
    assert names.final_name("minilm-sft-v2-qwen1.5b-nodev", teacher="oracle", nodev=True) == (
        "minilm-sft-v2-qwen1.5b-final-oracle-nodev")
    assert names.train_command("minilm-final-oracle-nodev", "x") == (
        "python train_stage2.py minilm-sft-nodev x --teacher oracle")
    top = names.final_name("minilm-sft-nodev", "bt", "likelihood-retriever", nodev=True, seed=7, top_k=5)
    assert top == "minilm-final-likelihood-retriever-top5-bt-seed7-nodev"
    assert names.train_command(top, "x") == ("python train_stage2.py minilm-sft-nodev x --teacher "
                                             "likelihood-retriever --top-k 5 --loss bt --seed 7")
    for never in ("minilm-final-top5", "minilm-final-judge-confident-top5", "minilm-final-likelihood-top1"):
        assert names.train_command(never, "x") is None  # --top-k: no pairwise judge's verdicts, K >= 2
    assert names.train_command("minilm-final-oracle-top5", "x") == (
        "python train_stage2.py minilm-sft x --teacher oracle --top-k 5")
    seeded = names.final_name("minilm-sft-nodev", "bt", "likelihood-retriever", nodev=True, seed=7)
    assert seeded == "minilm-final-likelihood-retriever-bt-seed7-nodev"
    assert names.train_command(seeded, "x") == (
        "python train_stage2.py minilm-sft-nodev x --teacher likelihood-retriever --loss bt --seed 7")
    assert names.train_command("minilm-final-seed07", "x") is None  # not the name --seed 7 gives
    assert names.final_name("minilm-sft", seed=names.SEED) == "minilm-final"  # the default seed: one name
    suffixes = (names.seed_suffix(7), names.seed_suffix(names.SEED), names.seed_suffix(None))
    assert suffixes == ("-seed7", "", "")
    custom = ["minilm-labelled-L256-nodev", "minilm-labelled-L256-final-oracle-nodev",
              "minilm-labelled-L256-bf16-nodev", "minilm-sft-final", "minilm-final-L256", "minilm",
              "my-model"]
    assert [names.train_command(name, "scifact") for name in custom] == [None] * len(custom)
    monkeypatch.setenv("SYNTRIEVER_OUTPUT", str(tmp_path))
    with pytest.raises(UserError, match=r"no model at .*minilm-labelled-L256-nodev-scifact; train it \(.*"
                                        r"--output-name minilm-labelled-L256-nodev\) or pass a model folder"):
        open_encoder("minilm-labelled-L256-nodev", "scifact")


def test_flip_percent_teachers_have_one_spelling_and_a_bounded_share() -> None:
    import train_stage2

    assert names.flip_percent("oracle-flip-4pct") == 4.0 and names.flip_percent("oracle-flip-0.5pct") == 0.5
    assert names.flip_percent("oracle-flip-50pct") == 50.0
    for wrong in ("oracle-flip-04pct", "oracle-flip-4.0pct", "oracle-flip-0pct", "oracle-flip-51pct",
                  "oracle-flip-50.0pct", "oracle-flip-pct", "oracle-flip-4", "oracle-flip-judge"):
        assert names.flip_percent(wrong) is None, wrong
    assert names.is_teacher("oracle-flip-judge") and not names.is_teacher("oracle-flip-4.0pct")
    # a name holding a share the script refuses reads back into no command
    assert names.train_command("minilm-final-oracle-flip-4pct-bt-nodev", "scifact") == (
        "python train_stage2.py minilm-sft-nodev scifact --teacher oracle-flip-4pct --loss bt")
    assert names.train_command("minilm-final-oracle-flip-60pct-bt", "scifact") is None
    with pytest.raises(SystemExit):
        train_stage2.build_parser().parse_args(["minilm-sft", "scifact", "--teacher", "oracle-flip-60pct"])
    from benchmarks.stage2_teachers import teacher_list

    assert teacher_list("oracle, oracle-flip-2pct") == ["oracle", "oracle-flip-2pct"]
    with pytest.raises(argparse.ArgumentTypeError, match="oracle-flip-<P>pct"):
        teacher_list("oracle,oracle-flip-2.0pct")


def test_an_output_name_of_options_is_not_read_as_another_llms_default_name() -> None:
    """``minilm-sft-L256-...-bf16`` (an --output-name) names no LLM ``L256-...-bf16``: no command
    is suggested for it, while real LLM tags still are."""
    for name in ("minilm-sft-L256-pull1-negrelated-thenlab3-bf16", "minilm-sft-pull1-6ep",
                 "minilm-sft-seed7"):
        assert names.stage1_args(name) is None, name
    assert names.stage1_args("minilm-sft-gpt-4o-mini") == ["minilm", "--llm-model", "gpt-4o-mini"]
    assert names.stage1_args("minilm-sft-v2-qwen1.5b-nodev") == [
        "minilm", "--prompt-version", "v2", "--llm-model", "qwen1.5b", "--train-split", "train-nodev"]


def test_a_report_over_another_judges_pairs_names_its_own_file() -> None:
    assert names.judge_suffix(names.EMBEDDED_LLM["judge"]) == ""  # the committed reports keep their names
    assert names.judge_suffix("gpt-4o") == "-gpt-4o"
    assert names.judge_suffix("/models/Judge-7B.gguf") == "-Judge-7B"
