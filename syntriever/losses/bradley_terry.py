"""Bradley-Terry preference loss, the stage-2 ablation of Syntriever."""

from __future__ import annotations

from collections.abc import Iterable

import torch.nn.functional as F
from torch import Tensor

from syntriever.losses.base import ScaledCosineLoss, check_columns, check_num_columns, embed


class BradleyTerryLoss(ScaledCosineLoss):
    """Bradley-Terry preference loss, the stage-2 ablation of Syntriever.

    Columns: (query ``q_i``, preferred passage ``c_i^+``, less-preferred passage ``c_i^-``);
    no label. With ``s = scale * cos``::

        L(q_i) = -log sigmoid( s(q_i,c_i^+) - s(q_i,c_i^-) )

    averaged over the batch (:func:`bradley_terry_loss` on embedding tensors). No in-batch
    negatives, so repeated queries are harmless.

    Reference: Kim & Baek, "Syntriever: How to Train Your Retriever with Synthetic Data from
    LLMs", NAACL Findings 2025, arXiv 2502.03824 (ablation of stage 2, which it underperforms).

    Args:
        model: the SentenceTransformer to train.
        scale: ``1 / tau``; 20 is ``tau = 0.05``.

    Example:
        ::

            from datasets import Dataset
            from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer
            from syntriever.losses import BradleyTerryLoss

            model = SentenceTransformer("output/minilm-sft-scifact")  # the stage-1 model
            triples = Dataset.from_json("triples.jsonl")  # text columns q, c+, c-; repeats allowed
            loss = BradleyTerryLoss(model)
            trainer = SentenceTransformerTrainer(model=model, train_dataset=triples, loss=loss)
            trainer.train()
    """

    def forward(
        self, sentence_features: Iterable[dict[str, Tensor]], labels: Tensor | None = None
    ) -> Tensor:
        features = list(sentence_features)
        check_num_columns(self, features, 3, "q, c+, c-")
        return self.compute_loss_from_embeddings(embed(self.model, features), labels)

    def compute_loss_from_embeddings(
        self, embeddings: list[Tensor], labels: Tensor | None
    ) -> Tensor:
        """The loss from the (q, c+, c-) embedding columns; ``labels`` is unused."""
        check_num_columns(self, embeddings, 3, "q, c+, c-")
        return bradley_terry_loss(*embeddings, scale=self.scale)


def bradley_terry_loss(
    anchors: Tensor, preferred: Tensor, less_preferred: Tensor, scale: float = 20.0
) -> Tensor:
    """The loss of :class:`BradleyTerryLoss` on ``(B, d)`` embedding tensors, averaged over the batch."""
    check_columns({"anchors": anchors, "preferred": preferred, "less_preferred": less_preferred})
    gap = scale * (
        F.cosine_similarity(anchors, preferred, dim=-1)
        - F.cosine_similarity(anchors, less_preferred, dim=-1)
    )
    return -F.logsigmoid(gap).mean()
