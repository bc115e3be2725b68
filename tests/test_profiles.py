"""The paper and embedded profiles: one table of values (syntriever/profiles.py) that every
settings dataclass and script reads; flags replace single values."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from syntriever import profiles
from syntriever.judge import ComparisonSettings
from syntriever.synthesis import SynthesisSettings
from syntriever.training import TrainSettings

ROOT = Path(__file__).resolve().parents[1]


def test_synthesis_and_judge_settings_come_from_the_profile() -> None:
    embedded = SynthesisSettings.for_profile(profiles.EMBEDDED)
    assert (embedded.max_tokens_passage, embedded.max_tokens_cot, embedded.verify_mode,
            embedded.chunk_queries) == (128, 96, "logprobs", 50)
    assert SynthesisSettings.for_profile(profiles.PAPER) == SynthesisSettings()  # defaults: the paper
    flagged = SynthesisSettings.for_profile(profiles.EMBEDDED, max_tokens_passage=300, verify_mode=None)
    assert (flagged.max_tokens_passage, flagged.verify_mode) == (300, "logprobs")  # None: not given
    judge = ComparisonSettings.for_profile(profiles.EMBEDDED)
    assert (judge.k, judge.judge_mode, judge.max_chars) == (3, "logprobs", 600)
    assert ComparisonSettings.for_profile(profiles.PAPER, k=4) == ComparisonSettings(k=4)
    with pytest.raises(ValueError, match="profile"):
        ComparisonSettings.for_profile("gpu")


def test_train_settings_per_stage_and_profile() -> None:
    cpu1 = TrainSettings.for_profile(profiles.EMBEDDED, 1)
    assert (cpu1.epochs, cpu1.batch_size, cpu1.warmup_steps, cpu1.warmup_ratio, cpu1.max_seq_length) == (
        3.0, 32, 0, 0.1, 128)
    cpu2 = TrainSettings.for_profile(profiles.EMBEDDED, 2, batch_size=8)
    assert (cpu2.epochs, cpu2.batch_size, cpu2.max_seq_length) == (1.0, 8, 128)
    paper2 = TrainSettings.for_profile(profiles.PAPER, 2)
    assert (paper2.epochs, paper2.batch_size, paper2.lr, paper2.max_seq_length) == (1.0, 100, 2e-5, 512)
    paper1 = TrainSettings.for_profile(profiles.PAPER, 1)
    assert (paper1.epochs, paper1.batch_size, paper1.warmup_steps) == (10.0, 60, 1000)
    assert profiles.describe_training(2) == "1 epoch, batch 100, lr 2e-05, max length 512"


@pytest.mark.parametrize(("script", "new", "meaning"), [
    ("retrieval.py", "--retrieval-depth", "passages ranked per query"),
    ("stage2/parse_comparison.py", "--compare-top-k", "compared pairwise"),
])
def test_the_two_ks_have_their_own_names(script: str, new: str, meaning: str) -> None:
    out = subprocess.run([sys.executable, script, "--help"], cwd=ROOT, capture_output=True, text=True,
                         timeout=120, check=True).stdout
    assert f"{new} " in out and "--k " in out and meaning in " ".join(out.split())
