"""Fine-tuning a bi-encoder with the sentence-transformers trainer (both stages).

:func:`fit` runs ``SentenceTransformerTrainer`` with the paper's optimiser
settings (AdamW, lr 2e-5, weight decay 0.01, cosine schedule with warm-up) and a batch sampler that
never puts the same text (hence the same query) twice in a batch; :func:`train` fits one phase or
several in turn (:class:`Phase`) and saves a SentenceTransformer folder with a ``syntriever.json``
card listing the data and the settings. Under ``torchrun`` or
``accelerate launch`` the trainer runs data-parallel on several processes/GPUs unchanged.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from datasets import Dataset
from sentence_transformers import SentenceTransformer
from sentence_transformers.base.sampler import BatchSamplers
from sentence_transformers.sentence_transformer import (
    SentenceTransformerTrainer,
    SentenceTransformerTrainingArguments,
)
from torch import nn

from syntriever import __version__
from syntriever.errors import UserError
from syntriever.jsonl import read_json, write_json
from syntriever.precision import BF16_FLAGS, native_bf16
from syntriever.profiles import (
    CPU_TRAIN_BF16,
    EMBEDDED,
    LEARNING_RATE,
    PAPER,
    SEED,
    TRAIN,
    WEIGHT_DECAY,
    check_profile,
    resolve,
)
from syntriever.provenance import CARD_NAME, with_commands

logger = logging.getLogger(__name__)


@dataclass
class TrainSettings:
    """Optimisation settings; the defaults are the paper's stage 1, the profiles
    (:data:`syntriever.profiles.TRAIN`) give each stage's."""

    epochs: float = TRAIN[PAPER][1]["epochs"]
    batch_size: int = TRAIN[PAPER][1]["batch_size"]
    lr: float = LEARNING_RATE
    weight_decay: float = WEIGHT_DECAY
    warmup_steps: int = TRAIN[PAPER][1]["warmup_steps"]
    warmup_ratio: float | None = TRAIN[PAPER][1]["warmup_ratio"]  # overrides warmup_steps when set
    max_seq_length: int = TRAIN[PAPER][1]["max_seq_length"]
    seed: int = SEED
    fp16: bool = False
    bf16: bool = False
    max_steps: int = -1

    @classmethod
    def for_profile(cls, profile: str, stage: int, **overrides: Any) -> TrainSettings:
        """A profile's settings for training ``stage`` (1 or 2), ``overrides`` that are not None
        replacing them; fp16 on a GPU."""
        values = resolve(TRAIN[check_profile(profile)][stage], overrides)
        gpu = torch.cuda.is_available()
        if values.get("bf16") is None:  # not asked: bf16 on a CPU that has it natively
            values["bf16"] = CPU_TRAIN_BF16 and not gpu and native_bf16()
        # the trainer takes one mixed precision: bf16 when asked for, else fp16 on a GPU
        return cls(**{"fp16": gpu and not values["bf16"], **values})

    @classmethod
    def for_device(cls, paper: bool, stage: int = 1, **overrides: Any) -> TrainSettings:
        """The paper's settings on a GPU (or with ``paper``), else the embedded profile's, which
        finish on a 2-core machine (:meth:`for_profile`)."""
        return cls.for_profile(PAPER if paper or torch.cuda.is_available() else EMBEDDED, stage, **overrides)


def warmup_warning(settings: TrainSettings, examples: int, world_size: int = 1) -> str | None:
    """A warning when the warm-up is not shorter than the training (the paper's 1000 warm-up
    steps on a small dataset: the learning rate then never reaches ``settings.lr``), else None."""
    if settings.warmup_ratio:
        return None
    per_epoch = math.ceil(examples / (settings.batch_size * max(world_size, 1)))
    total = settings.max_steps if settings.max_steps > 0 else math.ceil(per_epoch * settings.epochs)
    if settings.warmup_steps < total:
        return None
    return (f"warm-up of {settings.warmup_steps} steps is not shorter than the ~{total} training steps: "
            f"the learning rate stays below {settings.lr:g} throughout (set --warmup-steps)")


# What a model card records about how the model was made (both stages); a retrain that differs
# in any of these from the saved model of the same name would silently replace another model.
IDENTITY_KEYS = ("stage", "base_model", "base_model_path", "dataset", "split", "variant", "synthetic_file",
                 "prompt_version", "only_queries_of", "preferences_file", "stage2_loss", "teacher",
                 "settings")


def _differs(saved: Any, new: Any) -> bool:
    """Whether a saved card value differs from a new one; of two mappings only the keys both hold
    count (a card written before a setting existed is not a difference)."""
    if isinstance(saved, dict) and isinstance(new, dict):
        return any(_differs(saved[key], new[key]) for key in saved.keys() & new.keys())
    return json.loads(json.dumps(saved)) != json.loads(json.dumps(new))


def check_overwrite(out_dir: Path, card: dict[str, Any], overwrite: bool = False) -> None:
    """Refuse (:class:`UserError`) to replace the complete model in ``out_dir`` when its card
    records other :data:`IDENTITY_KEYS` values than ``card`` (the new run's, with ``settings``),
    unless ``overwrite``. Keys the saved card lacks are not compared."""
    saved_file = out_dir / CARD_NAME
    if overwrite or not ((out_dir / "modules.json").is_file() and saved_file.is_file()):
        return
    saved = read_json(saved_file, "fix it, or train with --overwrite or --output-name NAME")
    changed = [key for key in IDENTITY_KEYS if key in saved and _differs(saved[key], card.get(key))]
    if changed:
        raise UserError(
            f"{out_dir} holds a complete model trained with other {', '.join(changed)} than this run; "
            f"keep it and name this one (--output-name NAME) or replace it (--overwrite)"
        )


def without_loss_history(card: dict[str, Any]) -> dict[str, Any]:
    """The card without the loss histories (its own and its later phases'), for the README."""
    return {key: [without_loss_history(phase) for phase in value] if key == "then" else value
            for key, value in card.items() if key != "loss_history"}


def save_model(model: SentenceTransformer, out_dir: Path, card: dict[str, Any]) -> None:
    """Save ``model``, its card and the card in its README to ``out_dir`` atomically: everything
    goes to a hidden sibling folder first, which then takes ``out_dir``'s place, so a crash while
    saving leaves the previous model (if any) complete. Between the two renames of a replacement
    the previous model sits in ``.<name>.old-<pid>`` beside it."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.parent.glob(f".{out_dir.name}.saving-*"):  # left by a killed run
        if not _alive(stale.name.rsplit("-", 1)[-1]):
            shutil.rmtree(stale, ignore_errors=True)
    scratch = out_dir.parent / f".{out_dir.name}.saving-{os.getpid()}"
    old = out_dir.parent / f".{out_dir.name}.old-{os.getpid()}"
    shutil.rmtree(scratch, ignore_errors=True)
    try:
        model.save(str(scratch))
        write_json(scratch / CARD_NAME, card)
        with open(scratch / "README.md", "a", encoding="utf-8") as fh:
            fh.write("\n\n## Syntriever training record\n\n```json\n")
            fh.write(json.dumps(without_loss_history(card), indent=2))
            fh.write("\n```\n")
        if out_dir.exists():
            out_dir.rename(old)
        try:
            scratch.rename(out_dir)
        except OSError:
            if old.exists():
                old.rename(out_dir)
            raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    shutil.rmtree(old, ignore_errors=True)


def _alive(pid: str) -> bool:
    """Whether the process ``pid`` (a folder name's suffix) still runs."""
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:  # another user's process
        return True
    return True


def main_process() -> bool:
    """Whether this process saves: the only one, or rank 0 of a data-parallel run."""
    return not torch.distributed.is_initialized() or torch.distributed.get_rank() == 0


@dataclass(frozen=True)
class Phase:
    """A later training phase of the same model (e.g. stage 1's ``--then-labelled``)."""

    name: str
    dataset: Dataset
    loss: nn.Module
    settings: TrainSettings


def fit(
    model: SentenceTransformer, dataset: Dataset, loss: nn.Module, settings: TrainSettings
) -> dict[str, Any]:
    """Train ``model`` in place on ``dataset`` with ``loss``; return what the card records of it
    (settings, steps, seconds, throughput, loss history). Nothing is saved."""
    scratch = Path(tempfile.mkdtemp(prefix="syntriever-train-"))
    # several CPU processes (torchrun without GPUs): transformers needs gloo and use_cpu for DDP
    cpu_ddp = not torch.cuda.is_available() and int(os.environ.get("WORLD_SIZE", "1")) > 1
    distributed: dict[str, Any] = {"ddp_backend": "gloo", "use_cpu": True} if cpu_ddp else {}
    if settings.bf16 and not torch.cuda.is_available():
        distributed["use_cpu"] = True  # transformers refuses CPU bf16 (autocast) without it
        if not native_bf16():
            logger.warning("bf16 training on a CPU without native bfloat16 (%s): emulated, slower than fp32",
                           " or ".join(BF16_FLAGS))
    # transformers 5 reads a float warmup_steps < 1 as a ratio of the total steps
    warmup = settings.warmup_ratio if settings.warmup_ratio else settings.warmup_steps
    args = SentenceTransformerTrainingArguments(
        output_dir=str(scratch),
        num_train_epochs=settings.epochs,
        max_steps=settings.max_steps,
        per_device_train_batch_size=settings.batch_size,
        learning_rate=settings.lr,
        weight_decay=settings.weight_decay,
        lr_scheduler_type="cosine",
        optim="adamw_torch",
        batch_sampler=BatchSamplers.NO_DUPLICATES,
        seed=settings.seed,
        fp16=settings.fp16,
        bf16=settings.bf16,
        logging_steps=5,
        save_strategy="no",
        report_to="none",
        dataloader_drop_last=False,
        dataloader_pin_memory=torch.cuda.is_available(),
        warmup_steps=warmup,
        **distributed,
    )
    warning = warmup_warning(settings, len(dataset), args.world_size)
    if warning:
        logger.warning(warning)
    encoder_max_length = model.max_seq_length
    model.max_seq_length = settings.max_seq_length
    try:
        trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=dataset, loss=loss)
        start = time.perf_counter()
        output = trainer.train()
        seconds = time.perf_counter() - start
    finally:
        model.max_seq_length = encoder_max_length
        shutil.rmtree(scratch, ignore_errors=True)
    steps = int(output.global_step)
    examples_seen = min(len(dataset), steps * settings.batch_size) if settings.max_steps > 0 else int(
        round(len(dataset) * settings.epochs))
    return {
        "world_size": args.world_size,
        "settings": asdict(settings),
        "examples": len(dataset),
        "steps": steps,
        "train_seconds": round(seconds, 1),
        "examples_per_s": round(examples_seen / seconds, 3) if seconds else None,
        "final_train_loss": round(float(output.training_loss), 5),
        "loss_history": [
            {"step": h["step"], "loss": h["loss"]} for h in trainer.state.log_history if "loss" in h
        ],
        "loss": type(loss).__name__,
        "loss_config": loss.get_config_dict() if hasattr(loss, "get_config_dict") else {},
    }


def check_writable(folder: Path) -> None:
    """Refuse (:class:`UserError`) before any training when ``folder`` cannot take the model (a
    full or read-only disk would otherwise lose the whole run at the save)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=folder, prefix=".write-check-"):
            pass
    except OSError as err:
        raise UserError(f"{folder}: cannot write the model there ({err.strerror}); free or fix it, or set "
                        "SYNTRIEVER_OUTPUT to another folder") from None


def train(
    model: SentenceTransformer,
    dataset: Dataset,
    loss: nn.Module,
    settings: TrainSettings,
    out_dir: Path,
    card: dict[str, Any],
    *,
    overwrite: bool = False,
    then: tuple[Phase, ...] = (),
) -> dict[str, Any]:
    """Train ``model`` on ``dataset`` with ``loss`` (:func:`fit`), then on each later phase of
    ``then`` in turn; save it to ``out_dir`` (:func:`save_model`); return the card (its top level
    describes the first phase, ``then`` the later ones). A model already in ``out_dir`` made
    otherwise is kept unless ``overwrite`` (:func:`check_overwrite`, before training starts).

    ``settings.max_seq_length`` applies to training only: the saved model keeps the encoder's
    own maximum length, so evaluation is not silently truncated to the training length."""
    check_overwrite(out_dir, {**card, "settings": asdict(settings)}, overwrite)
    check_writable(out_dir.parent)
    stats = fit(model, dataset, loss, settings)
    later = [{"phase": phase.name, **fit(model, phase.dataset, phase.loss, phase.settings)} for phase in then]
    card = with_commands({"syntriever_version": __version__, **card, **stats,
                          **({"then": later} if later else {})})
    if main_process():
        save_model(model, out_dir, card)
        for phase in [stats, *later]:
            logger.info("%s: %d steps, %.0f s, %.2f examples/s", phase.get("phase", "training"),
                        phase["steps"], phase["train_seconds"], phase["examples_per_s"] or 0)
        logger.info("saved %s", out_dir)
    return card
