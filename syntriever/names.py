"""Names and folders of the models this project trains.

A trained model is named after its encoder and what trained it, and saved in
``output/<name>-<dataset>`` (:func:`model_dir`):

- stage 1: ``<encoder>-sft`` (:func:`stage1_name`); its ablations add a suffix per part turned
  off or option added (``-sft-nocot``, ``-sft-nosyn``, ``-sft-noverify``, ``-sft-neg<filter>``,
  ``-sft-pull<W>``); labelled pairs only: ``<encoder>-labelled``;
- stage 2: the stage-1 name with ``-sft`` replaced by ``-final`` (other stage-1 names:
  ``-final`` appended), plus ``-<teacher>`` for a teacher other than the judge
  (``-oracle``, ``-identity``, ``-judge-confident``, ``-judge-retriever``) and ``-bt`` for the
  Bradley-Terry ablation (:func:`final_name`);
- trained without the dev queries (split ``train-nodev``): any of these plus ``-nodev``.

:func:`train_command` reads a name back into the command that trains the model.
"""

from __future__ import annotations

from pathlib import Path

from syntriever.data import check_limit
from syntriever.paths import check_name, file_safe, output_root

SFT, FINAL, LABELLED, NODEV = "sft", "final", "labelled", "nodev"
NO_COT, NO_SYNTHETIC, NO_VERIFY = "nocot", "nosyn", "noverify"
PL_LOSS = "pl"  # stage 2's own loss; other losses name the model
DEFAULT_TEACHER = "judge"  # stage 2's own teacher (syntriever.teachers); others name the model


def negative_filter_suffix(criterion: str) -> str:
    """``neg<criterion>``: the suffix of a stage-1 model trained with filtered negatives."""
    return f"neg{criterion}"


def stage1_name(encoder: str, suffix: str = SFT, *, nodev: bool = False) -> str:
    """``<encoder>-<suffix>[-nodev]``, e.g. ``minilm-sft``, ``minilm-sft-nocot``, ``minilm-labelled``."""
    return f"{file_safe(encoder)}-{suffix}" + (f"-{NODEV}" if nodev else "")


def final_name(
    stage1_model: str, loss: str = PL_LOSS, teacher: str = DEFAULT_TEACHER, *, nodev: bool = False
) -> str:
    """minilm-sft -> minilm-final (pl, judge), minilm-final-bt (bt), minilm-final-oracle
    (oracle teacher); ``nodev`` (stage 2 on train-nodev): minilm-sft-nodev -> minilm-final-nodev."""
    base = without_nodev(file_safe(stage1_model)).removesuffix(f"-{SFT}")
    return (f"{base}-{FINAL}" + ("" if teacher == DEFAULT_TEACHER else f"-{teacher}")
            + ("" if loss == PL_LOSS else f"-{loss}") + (f"-{NODEV}" if nodev else ""))


def without_nodev(name: str) -> str:
    """The name of the same kind of model trained on all train queries."""
    return name.removesuffix(f"-{NODEV}")


STAGE1_FLAGS = {  # model-name suffix after "-sft-" -> train_stage1.py flags
    NO_COT: "--no-cot", NO_SYNTHETIC: "--no-synthetic", NO_VERIFY: "--no-verify",
    negative_filter_suffix("copies"): "--filter-negatives copies",
    negative_filter_suffix("judge"): "--filter-negatives judge",
}


def train_command(name: str, dataset: str) -> str | None:
    """The command that trains the model this project names ``name`` on ``dataset``
    (``minilm-sft`` -> ``python train_stage1.py minilm scifact``); None for other names."""
    base, sep, rest = name.partition(f"-{SFT}")
    if sep and (not rest or rest.removeprefix("-") in STAGE1_FLAGS) and base:
        flags = STAGE1_FLAGS.get(rest.removeprefix("-"), "")
        return f"python train_stage1.py {base} {dataset} {flags}".rstrip()
    if name.endswith(f"-{LABELLED}"):
        return f"python train_stage1.py {name.removesuffix(f'-{LABELLED}')} {dataset} --labelled-only"
    base, sep, rest = name.partition(f"-{FINAL}")
    if sep and base and rest in ("", "-bt"):
        return f"python train_stage2.py {base}-{SFT} {dataset}" + (" --loss bt" if rest else "")
    return None


def model_dir(name: str, dataset: str) -> Path:
    """``output/<name>-<dataset>``: where the model ``name`` trained on ``dataset`` is saved."""
    return output_root() / f"{check_name(name, 'model')}-{check_name(dataset)}"


def limited_name(name: str, limit: int | None) -> str:
    """``<stem>.limit<N>.jsonl`` for a run over the first ``limit`` queries: a partial run writes
    its own file and never replaces the complete one."""
    check_limit(limit)
    return name if limit is None else name.replace(".jsonl", f".limit{limit}.jsonl")
