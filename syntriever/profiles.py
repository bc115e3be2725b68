"""The two profiles every stage runs in, as data: ``paper`` (the paper's settings: a remote LLM,
a GPU) and ``embedded`` (the embedded llama.cpp LLMs and a 2-core CPU). Each stage's settings
dataclass takes its defaults from here (``SynthesisSettings.for_profile``,
``ComparisonSettings.for_profile``, ``TrainSettings.for_profile``) and the scripts' flags replace
single values (:func:`resolve`). This is the only place that spells out a profile's values.
Settings the same in both profiles keep their defaults in their own dataclass
(``passage_queries.PassageQuerySettings``, not in the paper).

Which profile applies: the LLM steps use ``embedded`` when the embedded server answers
(``--llm-backend local``), else ``paper``; training uses ``paper`` on a GPU or with ``--paper``,
else ``embedded``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

PAPER, EMBEDDED = "paper", "embedded"
PROFILES = (PAPER, EMBEDDED)

# The embedded llama.cpp presets (syntriever.llm.local.PRESETS) answering each LLM step. The judge
# is the 1.5B model: on 40 labelled SciFact pairs it preferred the relevant passage 31 times, the
# 0.5B model 19 times (benchmarks/results/judge_agreement-*.json).
EMBEDDED_LLM = {"synthesis": "qwen0.5b", "judge": "qwen1.5b"}
REMOTE_LLM = "gpt-4o"  # remote steps without --llm-model
# embedded server slots of the judge: prompt processing is compute-bound; one slot reuses passage
# #1 of the previous prompt from llama.cpp's prompt cache (1.5B judge, K = 3: 0.46 req/s with 1
# slot, 0.37 with 2)
EMBEDDED_JUDGE_SLOTS = 1

# syntriever.synthesis.SynthesisSettings
SYNTHESIS: dict[str, dict[str, Any]] = {
    PAPER: {"max_tokens_passage": 512, "max_tokens_cot": 512, "verify_mode": "text",
            "chunk_queries": None},
    EMBEDDED: {"max_tokens_passage": 128, "max_tokens_cot": 96, "verify_mode": "logprobs",
               "chunk_queries": 50},
}

# syntriever.judge.ComparisonSettings. Embedded: K = 3 (C(3,2) pairs x 2 orders, ~2.7 h for
# SciFact with the 1.5B judge on 2 cores); passages cut to 600 characters in the prompt
# (0.5B judge, 2 cores: 0.65 req/s at 1000 characters, 0.97 at 600).
JUDGE: dict[str, dict[str, Any]] = {
    PAPER: {"k": 5, "judge_mode": "text", "max_chars": None},
    EMBEDDED: {"k": 3, "judge_mode": "logprobs", "max_chars": 600},
}

# syntriever.training.TrainSettings per stage; the optimiser is the paper's in both profiles.
LEARNING_RATE, WEIGHT_DECAY = 2e-5, 0.01
# The training seed of both stages; models trained with another carry it in their name (-seed<N>).
SEED = 42
# The paper: stage 1 10 epochs, batch 60, 1000 warm-up steps; stage 2 1 epoch, batch 100; max
# length 512. Embedded: what finishes on 2 cores (max length 128, 10% warm-up).
_PAPER_STAGE1 = {"epochs": 10.0, "batch_size": 60, "warmup_steps": 1000, "warmup_ratio": None,
                 "max_seq_length": 512}
_EMBEDDED_STAGE1 = {"epochs": 3.0, "batch_size": 32, "warmup_steps": 0, "warmup_ratio": 0.1,
                    "max_seq_length": 128}
TRAIN: dict[str, dict[int, dict[str, Any]]] = {
    PAPER: {1: _PAPER_STAGE1, 2: {**_PAPER_STAGE1, "epochs": 1.0, "batch_size": 100}},
    EMBEDDED: {1: _EMBEDDED_STAGE1, 2: {**_EMBEDDED_STAGE1, "epochs": 1.0}},
}


# Trainer bf16 on a CPU with native bfloat16 (syntriever.precision.native_bf16) unless --no-bf16:
# SciFact dev split, max length 256, bf16 minus fp32 nDCG@10: labelled-only -0.18 [-0.54, 0.00],
# stage 1 (--labelled-weight 1 --negatives related) +0.02 [-0.56, +0.64]; 1.57x faster
# (results/scifact/dev/DECISIONS.md, benchmarks/results/precision-quiet.json). Elsewhere fp32 on a
# CPU (emulated bf16 is slower) and fp16 on a GPU.
CPU_TRAIN_BF16 = True


def check_profile(profile: str) -> str:
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {PROFILES}, not {profile!r}")
    return profile


def llm_profile(is_local: bool) -> str:
    """The profile of an LLM step: ``embedded`` when the embedded server answers."""
    return EMBEDDED if is_local else PAPER


def resolve(defaults: Mapping[str, Any], flags: Mapping[str, Any]) -> dict[str, Any]:
    """A profile's values with every flag that was given (not None) in their place."""
    return {**defaults, **{key: value for key, value in flags.items() if value is not None}}


def describe_training(stage: int, profile: str = PAPER) -> str:
    """``10 epochs, batch 60, ..., max length 512``: a profile's training settings for help texts."""
    values = TRAIN[check_profile(profile)][stage]
    epochs = values["epochs"]
    return (f"{epochs:g} epoch{'s' if epochs != 1 else ''}, batch {values['batch_size']}, "
            f"lr {LEARNING_RATE:g}, max length {values['max_seq_length']}")
