"""Training with later phases: stage 1 followed by epochs on the labelled pairs alone."""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from datasets import Dataset
from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

from syntriever.errors import UserError
from syntriever.stage1 import Stage1Variant
from syntriever.training import Phase, TrainSettings, train
from tests.test_retrieval_scale import tiny_corpus


def weights(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def test_a_later_phase_trains_the_saved_model_and_the_card_records_it(tiny_st_model, tmp_path: Path) -> None:
    texts = [doc["text"] for doc in tiny_corpus(16, seed=3).values()]
    first = Dataset.from_dict({"query": texts[:8], "positive": texts[8:]})
    second = Dataset.from_dict({"query": texts[8:], "positive": texts[:8]})
    settings = TrainSettings(epochs=1, batch_size=4, max_seq_length=16, max_steps=2, warmup_steps=0,
                             warmup_ratio=0.0, bf16=False, fp16=False)
    twin = copy.deepcopy(tiny_st_model)
    encoder_length = tiny_st_model.max_seq_length
    phase = Phase("labelled", second, MultipleNegativesRankingLoss(tiny_st_model),
                  replace(settings, max_steps=3))
    card = train(tiny_st_model, first, MultipleNegativesRankingLoss(tiny_st_model), settings,
                 tmp_path / "two", {"stage": 1}, then=(phase,))
    alone = train(twin, first, MultipleNegativesRankingLoss(twin), settings, tmp_path / "one", {"stage": 1})
    assert card["steps"] == alone["steps"] == 2 and "then" not in alone
    later = [(p["phase"], p["steps"], p["settings"]["max_steps"]) for p in card["then"]]
    assert later == [("labelled", 3, 3)]
    assert card["final_train_loss"] == alone["final_train_loss"]  # the same first phase
    saved = json.loads((tmp_path / "two" / "syntriever.json").read_text())
    assert saved["then"][0]["steps"] == 3 and saved["settings"]["max_steps"] == 2
    readme = (tmp_path / "two" / "README.md").read_text().split("## Syntriever training record")[1]
    assert '"phase": "labelled"' in readme and "loss_history" not in readme
    two, one = weights(tmp_path / "two"), weights(tmp_path / "one")
    assert any(not torch.equal(two[key], one[key]) for key in one)  # the later phase moved the weights
    assert tiny_st_model.max_seq_length == encoder_length  # the training length is not saved


def test_then_labelled_needs_synthetic_data_and_names_the_model() -> None:
    with pytest.raises(UserError, match="needs synthetic data"):
        Stage1Variant(use_cot=False, use_synthetic=False, then_labelled=3)
    for bad in (-1, float("nan"), float("inf")):
        with pytest.raises(UserError, match="finite number of epochs >= 0"):
            Stage1Variant(then_labelled=bad)
    with pytest.raises(UserError, match="finite number >= 0"):
        Stage1Variant(labelled_weight=float("nan"))
    variant = Stage1Variant(labelled_weight=1, negative_source="related", then_labelled=3)
    assert variant.suffix() == "sft-pull1-negrelated-thenlab3"
