"""Plumbing shared by the Syntriever losses: scaled cosine, shape checks, embedding, base module."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from sentence_transformers import SentenceTransformer
from torch import Tensor, nn

try:  # sentence-transformers >= 6: one merged forward pass for the candidate columns
    from sentence_transformers.base.losses.merged_forward import embed_columns as _st_embed_columns
except ImportError:  # pragma: no cover - other layouts: one forward per column
    _st_embed_columns = None

SYNTRIEVER_CITATION = """
@inproceedings{kim2025syntriever,
    title={Syntriever: How to Train Your Retriever with Synthetic Data from {LLM}s},
    author={Minsang Kim and Seungjun Baek},
    booktitle={Findings of the Association for Computational Linguistics: NAACL 2025},
    year={2025},
    eprint={2502.03824},
    archivePrefix={arXiv},
    primaryClass={cs.CL},
    url={https://arxiv.org/abs/2502.03824},
}
"""


def scaled_cosine(a: Tensor, b: Tensor, scale: float = 20.0) -> Tensor:
    """Return the ``(len(a), len(b))`` matrix ``scale * cos(a_i, b_j)``."""
    return scale * (F.normalize(a, p=2, dim=-1) @ F.normalize(b, p=2, dim=-1).T)


def check_columns(named: dict[str, Tensor | None]) -> tuple[int, int]:
    """Check that every given embedding column is ``(batch, dim)`` with a common shape."""
    shape = None
    for name, tensor in named.items():
        if tensor is None:
            continue
        if tensor.ndim != 2:
            raise ValueError(f"{name} must be a (batch, dim) tensor, got {tuple(tensor.shape)}")
        if shape is None:
            shape = tuple(tensor.shape)
        elif tuple(tensor.shape) != shape:
            raise ValueError(
                f"all embedding columns must share one (batch, dim) shape; {name} has "
                f"{tuple(tensor.shape)}, expected {shape}"
            )
    if shape is None or shape[0] == 0:
        raise ValueError("empty batch")
    return shape


def repeated_rows(x: Tensor, rtol: float = 1e-5, atol: float = 1e-8) -> list[tuple[int, int]]:
    """Return the pairs ``(i, j)``, ``i < j``, of rows of ``x`` that are ``torch.allclose``."""
    with torch.no_grad():
        x = x.detach()
        close = torch.isclose(x[:, None, :], x[None, :, :], rtol=rtol, atol=atol).all(dim=-1)
        close = torch.triu(close, diagonal=1)
        return [(int(i), int(j)) for i, j in close.nonzero().tolist()]


def embed(model: nn.Module, features: list[dict[str, Any]]) -> list[Tensor]:
    """One ``sentence_embedding`` tensor per column, as the built-in 6.x losses obtain them."""
    if _st_embed_columns is not None:
        return _st_embed_columns(model, features)
    return [model(f)["sentence_embedding"] for f in features]  # pragma: no cover


def check_num_columns(loss: nn.Module, features: list[Any], expected: int, layout: str) -> None:
    """Raise when a loss got another number of text columns than its layout needs."""
    if len(features) != expected:
        raise ValueError(
            f"{type(loss).__name__} expects {expected} text columns ({layout}), got "
            f"{len(features)}; check the dataset columns and the loss options"
        )


class ScaledCosineLoss(nn.Module):
    """Shared plumbing: the model (the trainer swaps it by this attribute name), the scale
    ``1 / tau`` and the properties sentence-transformers' model card reads."""

    def __init__(self, model: SentenceTransformer, scale: float = 20.0) -> None:
        super().__init__()
        if not scale > 0:
            raise ValueError("scale must be positive")
        self.model = model
        self.scale = scale

    def get_config_dict(self) -> dict[str, Any]:
        return {"scale": self.scale}

    @property
    def temperature(self) -> float:
        return 1.0 / self.scale

    @property
    def citation(self) -> str:
        return SYNTRIEVER_CITATION
