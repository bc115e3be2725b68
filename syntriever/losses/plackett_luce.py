"""Stage-2 loss of Syntriever: partial Plackett-Luce ranking of LLM preference triples."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from sentence_transformers import SentenceTransformer
from torch import Tensor

from syntriever.losses.base import (
    ScaledCosineLoss,
    check_columns,
    check_num_columns,
    embed,
    repeated_rows,
    scaled_cosine,
)

_REPEATED_QUERY_HINT = (
    "queries in a batch must be distinct, otherwise another example of the same query becomes a "
    "false in-batch negative; train with batch_sampler=BatchSamplers.NO_DUPLICATES"
)


class PartialPlackettLuceLoss(ScaledCosineLoss):
    """Stage-2 loss of Syntriever: partial Plackett-Luce ranking of LLM preference triples.

    Columns: (query ``q_i``, preferred passage ``c_i^+``, less-preferred passage ``c_i^-``);
    no label. With ``s = scale * cos``::

        L2(q_i) = -log[ e^s(q_i,c_i^+) / sum_{j in B}(e^s(q_i,c_j^+) + e^s(q_i,c_j^-)) ]
                  -log[ e^s(q_i,c_i^-) / (e^s(q_i,c_i^-)
                                          + sum_{j in B, j != i}(e^s(q_i,c_j^+) + e^s(q_i,c_j^-))) ]

    averaged over the batch. This is ``-log`` of the Plackett-Luce probability of the partial
    ranking ``c_i^+ > c_i^- > {the other in-batch passages}`` (``c_i^+`` ranked first and
    ``c_i^-`` second among the ``2B`` in-batch passages), the order among the rest
    marginalised out. The paper's "regularisation" toward the stage-1 model is this contrastive
    form itself (both ``c^+`` and ``c^-`` must stay above the in-batch passages); there is no KL
    term and no reference model. :func:`partial_plackett_luce_loss` computes it from embedding
    tensors.

    Batches must hold distinct queries: another triple of the same query would make its passages
    false in-batch negatives. The trainer should use ``BatchSamplers.NO_DUPLICATES``. As a guard,
    ``check_distinct_queries=True`` raises ``ValueError("batch holds a repeated query ...")``
    when two rows of the query column have identical token ids, or identical embeddings
    (``torch.allclose``; see :func:`partial_plackett_luce_loss`).

    Reference: Kim & Baek, "Syntriever: How to Train Your Retriever with Synthetic Data from
    LLMs", NAACL Findings 2025, arXiv 2502.03824, stage 2.

    Args:
        model: the SentenceTransformer to train.
        scale: ``1 / tau``; 20 is ``tau = 0.05``.
        check_distinct_queries: raise on a repeated query in a batch.

    Example:
        ::

            from datasets import Dataset
            from sentence_transformers import SentenceTransformer
            from sentence_transformers import SentenceTransformerTrainer as Trainer
            from sentence_transformers import SentenceTransformerTrainingArguments as Arguments
            from sentence_transformers.base.sampler import BatchSamplers
            from syntriever.losses import PartialPlackettLuceLoss

            model = SentenceTransformer("output/minilm-sft-scifact")  # the stage-1 model
            train_dataset = Dataset.from_dict({
                "q": ["What causes tides?", "Who wrote Hamlet?"],
                "c+": ["The Moon's gravity pulls the oceans.", "Shakespeare wrote Hamlet."],
                "c-": ["Tidal pools host crabs.", "Hamlet is a Danish prince."],
            })
            loss = PartialPlackettLuceLoss(model)
            args = Arguments("out", batch_sampler=BatchSamplers.NO_DUPLICATES)
            trainer = Trainer(model=model, args=args, train_dataset=train_dataset, loss=loss)
            trainer.train()
    """

    def __init__(
        self, model: SentenceTransformer, scale: float = 20.0, check_distinct_queries: bool = True
    ) -> None:
        super().__init__(model, scale)
        self.check_distinct_queries = check_distinct_queries

    def forward(
        self, sentence_features: Iterable[dict[str, Tensor]], labels: Tensor | None = None
    ) -> Tensor:
        features = list(sentence_features)
        check_num_columns(self, features, 3, "q, c+, c-")
        if self.check_distinct_queries:
            pairs = _repeated_token_rows(features[0])
            if pairs:
                raise ValueError(
                    f"batch holds a repeated query: query rows {pairs} have identical tokens; "
                    + _REPEATED_QUERY_HINT
                )
        return self.compute_loss_from_embeddings(embed(self.model, features), labels)

    def compute_loss_from_embeddings(
        self, embeddings: list[Tensor], labels: Tensor | None
    ) -> Tensor:
        """The loss from the (q, c+, c-) embedding columns; ``labels`` is unused."""
        check_num_columns(self, embeddings, 3, "q, c+, c-")
        anchors, preferred, less_preferred = embeddings
        return partial_plackett_luce_loss(
            anchors,
            preferred,
            less_preferred,
            self.scale,
            check_distinct=self.check_distinct_queries,
        )

    def get_config_dict(self) -> dict[str, Any]:
        return {"scale": self.scale, "check_distinct_queries": self.check_distinct_queries}


def _repeated_token_rows(features: dict[str, Any]) -> list[tuple[int, int]]:
    """Pairs of rows with identical (masked) token ids in one tokenized column, if it has any."""
    ids = features.get("input_ids")
    if not isinstance(ids, Tensor) or ids.ndim != 2:
        return []
    mask = features.get("attention_mask")
    if isinstance(mask, Tensor) and mask.shape == ids.shape:
        ids = ids * mask
    equal = (ids[:, None, :] == ids[None, :, :]).all(dim=-1)
    equal = torch.triu(equal, diagonal=1)
    return [(int(i), int(j)) for i, j in equal.nonzero().tolist()]


def partial_plackett_luce_loss(
    anchors: Tensor,
    preferred: Tensor,
    less_preferred: Tensor,
    scale: float = 20.0,
    check_distinct: bool = True,
) -> Tensor:
    """The stage-2 loss ``L2`` of :class:`PartialPlackettLuceLoss` on embedding tensors,
    averaged over the batch.

    Args:
        anchors: ``(B, d)`` query embeddings; the queries must be distinct.
        preferred: ``(B, d)`` preferred passages ``c_i^+``.
        less_preferred: ``(B, d)`` less-preferred passages ``c_i^-``.
        scale: ``1 / tau``.
        check_distinct: raise ``ValueError("batch holds a repeated query ...")`` if two anchor
            rows are ``torch.allclose``. This only catches repeats whose embeddings coincide,
            i.e. not under dropout in training mode; :class:`PartialPlackettLuceLoss` also checks
            the anchor token ids, which dropout does not affect.
    """
    batch_size, _ = check_columns(
        {"anchors": anchors, "preferred": preferred, "less_preferred": less_preferred}
    )
    if check_distinct:
        pairs = repeated_rows(anchors)
        if pairs:
            raise ValueError(
                f"batch holds a repeated query: anchor rows {pairs} have identical embeddings; "
                + _REPEATED_QUERY_HINT
            )
    logits = scaled_cosine(anchors, torch.cat([preferred, less_preferred], dim=0), scale)
    rows = torch.arange(batch_size, device=anchors.device)
    preferred_logit = logits[rows, rows]
    less_preferred_logit = logits[rows, batch_size + rows]
    # First pick: c_i^+ among all 2B passages.
    first = torch.logsumexp(logits, dim=1) - preferred_logit
    # Second pick: c_i^- among what is left once c_i^+ is taken.
    without_own_preferred = logits.clone()
    without_own_preferred[rows, rows] = float("-inf")
    second = torch.logsumexp(without_own_preferred, dim=1) - less_preferred_logit
    return (first + second).mean()
