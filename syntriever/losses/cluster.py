"""Stage-1 loss of Syntriever: cluster a query with all its relevant texts."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import torch
import torch.nn.functional as F
from sentence_transformers import SentenceTransformer
from torch import Tensor

from syntriever.losses.base import ScaledCosineLoss, check_columns, check_num_columns, embed, scaled_cosine

logger = logging.getLogger(__name__)

UNVERIFIED = -1  # verification answer unparseable or missing: p_i^+ is left out of L1(q_i)


class SyntrieverClusterLoss(ScaledCosineLoss):
    """Stage-1 loss of Syntriever: cluster a query with all its relevant texts.

    The group ``{q_i, p_i, p_i^+, q_i^cot}`` is one cluster (soft-nearest-neighbour style,
    log-sum-exp over the positives); with ``s = scale * cos`` and ``m_i`` the verification flag::

        L1(q_i) = -log( [e^s(q_i,p_i) + m_i e^s(q_i,p_i^+) + e^s(q_i,q_i^cot)]
                        / sum_{j in B} [e^s(q_i,p_j) + e^s(q_i,p_j^+)
                                        + e^s(q_i,q_j^cot) + e^s(q_i,p_j^-)] )

    averaged over the batch. The denominator includes ``j = i``. Hard negatives only appear in
    denominators. The CoT-augmented query ``q_i^cot`` is embedded as a passage-side positive.
    A relabelled ``p_i^+`` (``m_i = 0``) leaves the numerator but stays in the denominator, i.e.
    it becomes a second hard negative of ``q_i``. Absent columns drop out of both sums (the
    ablations); with only ``q`` and ``p`` this is InfoNCE with in-batch negatives.
    :func:`cluster_loss` computes it from embedding tensors.

    Inputs (text columns in this order, then an optional label column):

    +------------------------------------+------------------------------------------+
    | options                            | columns                                  |
    +====================================+==========================================+
    | default                            | (q, p, p^+, q^cot, p^-) + label          |
    +------------------------------------+------------------------------------------+
    | ``use_cot=False``                  | (q, p, p^+, p^-) + label                 |
    +------------------------------------+------------------------------------------+
    | ``use_synthetic=False``            | (q, p, q^cot)                            |
    +------------------------------------+------------------------------------------+
    | both False                         | (q, p): InfoNCE, in-batch negatives      |
    +------------------------------------+------------------------------------------+

    Self-verification flag: give the dataset a column named ``label`` (any of the trainer's
    label columns: ``label``, ``labels``, ``score``, ``scores``) holding 1 / True when the LLM
    verified ``p_i^+`` as relevant and 0 / False when it answered no. The trainer removes that
    column from the text columns and passes it as ``labels``. A two-column label
    ``[verified, keep_negative]`` also says, per example, whether ``p_i^-`` stays a hard negative
    of ``q_i`` (1) or was filtered out (0; see :func:`cluster_loss`). Without a label column
    (``labels=None``) every ``p_i^+`` counts as verified, which is the "self-verification off"
    ablation; a warning is logged once. With ``use_synthetic=False`` the flags must be absent
    or all 1.

    Not in the paper: ``labelled_weight = w > 0`` adds ``w`` times the InfoNCE term of the
    labelled pair over the same candidates, ``-log( e^s(q_i,p_i) / sum_{j in B}[...] )``, so the
    labelled passage keeps its pull when synthetic texts closer to the query take the cluster's
    numerator (with small LLMs they do: SciFact, Qwen-Coder 0.5B, median share of ``p_i`` in the
    numerator 0.003 at scale 20).

    Batches should hold distinct queries (use ``BatchSamplers.NO_DUPLICATES``).

    Reference: Kim & Baek, "Syntriever: How to Train Your Retriever with Synthetic Data from
    LLMs", NAACL Findings 2025, arXiv 2502.03824, stage 1. This implements the equation of the
    paper, not the authors' public code (see :func:`authors_variant_loss`).

    Args:
        model: the SentenceTransformer to train.
        scale: ``1 / tau``; 20 is ``tau = 0.05``.
        use_cot: whether the ``q^cot`` column is present (paper, Table 3 ablation).
        use_synthetic: whether the ``p^+`` and ``p^-`` columns are present (Table 3 ablation).
        labelled_weight: weight of the added labelled-pair InfoNCE term (0: the paper's loss).

    Example:
        ::

            from datasets import Dataset
            from sentence_transformers import SentenceTransformer
            from sentence_transformers import SentenceTransformerTrainer as Trainer
            from sentence_transformers import SentenceTransformerTrainingArguments as Arguments
            from sentence_transformers.base.sampler import BatchSamplers
            from syntriever.losses import SyntrieverClusterLoss

            model = SentenceTransformer("sentence-transformers/all-MiniLM-L6-v2")
            train_dataset = Dataset.from_dict({
                "q": ["What causes tides?", "Who wrote Hamlet?"],
                "p": ["Tides are caused by the Moon's gravity.", "Hamlet is a play by Shakespeare."],
                "p+": ["The Moon pulls the oceans.", "Shakespeare wrote Hamlet around 1600."],
                "q_cot": ["tides ocean Moon gravity", "Hamlet author Shakespeare play"],
                "p-": ["Tidal pools host crabs.", "Hamlet is a small village."],
                "label": [1, 0],  # the LLM verified the first p+ and relabelled the second
            })
            loss = SyntrieverClusterLoss(model)
            args = Arguments("out", batch_sampler=BatchSamplers.NO_DUPLICATES)
            trainer = Trainer(model=model, args=args, train_dataset=train_dataset, loss=loss)
            trainer.train()
    """

    def __init__(
        self,
        model: SentenceTransformer,
        scale: float = 20.0,
        use_cot: bool = True,
        use_synthetic: bool = True,
        labelled_weight: float = 0.0,
    ) -> None:
        super().__init__(model, scale)
        self.use_cot = use_cot
        self.use_synthetic = use_synthetic
        self.labelled_weight = labelled_weight
        self._warned_no_labels = False

    @property
    def column_layout(self) -> tuple[str, ...]:
        """Names of the expected text columns, in order."""
        layout = ["q", "p"]
        if self.use_synthetic:
            layout.append("p+")
        if self.use_cot:
            layout.append("q_cot")
        if self.use_synthetic:
            layout.append("p-")
        return tuple(layout)

    def forward(
        self, sentence_features: Iterable[dict[str, Tensor]], labels: Tensor | None = None
    ) -> Tensor:
        features = list(sentence_features)
        layout = self.column_layout
        check_num_columns(self, features, len(layout), ", ".join(layout))
        return self.compute_loss_from_embeddings(embed(self.model, features), labels)

    def compute_loss_from_embeddings(
        self, embeddings: list[Tensor], labels: Tensor | None
    ) -> Tensor:
        """The loss from one embedding tensor per column (in :attr:`column_layout` order)."""
        layout = self.column_layout
        check_num_columns(self, embeddings, len(layout), ", ".join(layout))
        columns = dict(zip(layout, embeddings, strict=True))
        if labels is None and self.use_synthetic and not self._warned_no_labels:
            logger.warning(
                "SyntrieverClusterLoss got no label column: every synthetic positive counts as "
                "verified (self-verification off)"
            )
            self._warned_no_labels = True
        keep_negative = None
        if labels is not None and labels.ndim == 2:
            if labels.shape[1] != 2:
                raise ValueError(f"labels must be (batch,) or (batch, 2), got {tuple(labels.shape)}")
            labels, keep_negative = labels[:, 0], labels[:, 1]
        if labels is not None and not self.use_synthetic:
            flags = _verified_mask(labels, columns["q"].shape[0], columns["q"].device)
            filtered = keep_negative is not None and not bool((keep_negative == 1).all())
            if filtered or not bool((flags == 1).all()):
                raise ValueError("use_synthetic=False, but some examples flag synthetic texts")
            labels = keep_negative = None
        return cluster_loss(
            columns["q"],
            columns["p"],
            synthetic_positives=columns.get("p+"),
            cot_queries=columns.get("q_cot"),
            synthetic_negatives=columns.get("p-"),
            verified=labels,
            scale=self.scale,
            keep_negative=keep_negative,
            labelled_weight=self.labelled_weight,
        )

    def get_config_dict(self) -> dict[str, Any]:
        return {"scale": self.scale, "use_cot": self.use_cot, "use_synthetic": self.use_synthetic,
                "labelled_weight": self.labelled_weight}


def _verified_mask(verified: Tensor | None, batch_size: int, device: torch.device) -> Tensor | None:
    """Check the self-verification flags and return them as ints: 1 verified, 0 relabelled,
    -1 unknown (bool flags map to 1/0)."""
    if verified is None:
        return None
    flags = verified.detach().to(device).reshape(-1)
    if flags.numel() != batch_size:
        raise ValueError(f"expected {batch_size} verification flags, got {flags.numel()}")
    if flags.dtype == torch.bool:
        return flags.long()
    if not bool(((flags == 0) | (flags == 1) | (flags == UNVERIFIED)).all()):
        raise ValueError(
            "verification flags must be 1 (synthetic positive verified relevant), 0 "
            f"(relabelled as a hard negative) or -1 (unknown), got {flags.tolist()}"
        )
    return flags.long()


def _binary_flags(flags: Tensor, batch_size: int, device: torch.device, name: str) -> Tensor:
    """Check ``(B,)`` 0/1 flags and return them as ints."""
    flags = flags.detach().to(device).reshape(-1).long()
    if flags.numel() != batch_size:
        raise ValueError(f"expected {batch_size} {name} flags, got {flags.numel()}")
    if not bool(((flags == 0) | (flags == 1)).all()):
        raise ValueError(f"{name} flags must be 0 or 1, got {flags.tolist()}")
    return flags


def _cluster_logits(
    anchors: Tensor,
    positives: Tensor,
    synthetic_positives: Tensor | None,
    cot_queries: Tensor | None,
    synthetic_negatives: Tensor | None,
    scale: float,
) -> Tensor:
    """``s(q_i, c)`` for every candidate ``c`` in column blocks ``[p, p^+, q^cot, p^-]`` (absent
    columns skipped): a ``(B, K * B)`` matrix, after checking the shapes."""
    check_columns(
        {
            "anchors": anchors,
            "positives": positives,
            "synthetic_positives": synthetic_positives,
            "cot_queries": cot_queries,
            "synthetic_negatives": synthetic_negatives,
        }
    )
    optional = (synthetic_positives, cot_queries, synthetic_negatives)
    candidates = [positives, *(c for c in optional if c is not None)]
    return scaled_cosine(anchors, torch.cat(candidates, dim=0), scale)


def cluster_loss(
    anchors: Tensor,
    positives: Tensor,
    synthetic_positives: Tensor | None = None,
    cot_queries: Tensor | None = None,
    synthetic_negatives: Tensor | None = None,
    verified: Tensor | None = None,
    scale: float = 20.0,
    keep_negative: Tensor | None = None,
    labelled_weight: float = 0.0,
) -> Tensor:
    """The stage-1 loss ``L1`` of :class:`SyntrieverClusterLoss` on embedding tensors, averaged
    over the batch (plus ``labelled_weight`` times the labelled pair's InfoNCE term).

    Args:
        anchors: ``(B, d)`` query embeddings ``q_i``.
        positives: ``(B, d)`` labelled relevant passages ``p_i``.
        synthetic_positives: ``(B, d)`` synthetic relevant passages ``p_i^+``, or None.
        cot_queries: ``(B, d)`` CoT-augmented queries ``q_i^cot`` (passage side), or None.
        synthetic_negatives: ``(B, d)`` synthetic hard negatives ``p_i^-``, or None.
        verified: ``(B,)`` flags, 1/True = ``p_i^+`` verified relevant, 0/False = relabelled,
            -1 = verification unknown (unparseable answer): ``p_i^+`` then leaves both the
            numerator and the denominator of ``L1(q_i)`` (it is neither a positive nor a
            negative of its own query; it stays an in-batch negative of the others).
            None means all verified. Needs ``synthetic_positives`` if any flag is not 1.
        scale: ``1 / tau``.
        keep_negative: ``(B,)`` flags, 1 = ``p_i^-`` is a hard negative of ``q_i`` (the paper),
            0 = a filtered negative: it leaves the denominator of ``L1(q_i)`` and stays an
            in-batch negative of the other queries. None keeps all. An option beside the
            paper, for LLMs whose "irrelevant" passages restate the query.
        labelled_weight: not in the paper; weight of ``-log(e^s(q_i,p_i) / denominator)`` added
            to ``L1(q_i)`` (0 keeps the paper's loss).

    Example:
        >>> import torch
        >>> q, p = torch.eye(2), torch.eye(2)
        >>> round(cluster_loss(q, p).item(), 6)  # InfoNCE: each query's own passage wins
        0.0
    """
    logits = _cluster_logits(anchors, positives, synthetic_positives, cot_queries, synthetic_negatives, scale)
    batch_size = anchors.shape[0]
    flags = _verified_mask(verified, batch_size, anchors.device)
    if flags is not None and synthetic_positives is None and not bool((flags == 1).all()):
        raise ValueError("a relabelled or unknown flag was given without a synthetic positive column")
    rows = torch.arange(batch_size, device=anchors.device)
    dropped = torch.zeros_like(logits, dtype=torch.bool)  # own candidates left out of L1(q_i)
    if flags is not None:
        dropped[rows, batch_size + rows] = flags == UNVERIFIED
    if keep_negative is not None:
        if synthetic_negatives is None:
            raise ValueError("keep_negative was given without a synthetic negative column")
        keep = _binary_flags(keep_negative, batch_size, anchors.device, "keep_negative")
        dropped[rows, logits.shape[1] - batch_size + rows] = keep == 0
    if bool(dropped.any()):
        logits = logits.masked_fill(dropped, float("-inf"))
    log_denominator = torch.logsumexp(logits, dim=1)

    numerator_terms = [logits[rows, rows]]  # s(q_i, p_i)
    offset = batch_size
    if synthetic_positives is not None:
        own_synthetic = logits[rows, offset + rows]
        if flags is not None:
            own_synthetic = own_synthetic.masked_fill(flags != 1, float("-inf"))
        numerator_terms.append(own_synthetic)
        offset += batch_size
    if cot_queries is not None:
        numerator_terms.append(logits[rows, offset + rows])
    log_numerator = torch.logsumexp(torch.stack(numerator_terms, dim=1), dim=1)
    loss = log_denominator - log_numerator
    if labelled_weight:
        loss = loss + labelled_weight * (log_denominator - logits[rows, rows])
    return loss.mean()


def authors_variant_loss(
    anchors: Tensor,
    positives: Tensor,
    synthetic_positives: Tensor | None = None,
    cot_queries: Tensor | None = None,
    synthetic_negatives: Tensor | None = None,
    scale: float = 20.0,
) -> Tensor:
    """DEFECTIVE reference: what the authors' public stage-1 code effectively optimises.

    It exists only so tests and documentation can show the difference; never train with it.
    The public code sums the positive logits but then returns plain cross-entropy over all
    candidates with ``p_i`` as the only target::

        L(q_i) = -log( e^s(q_i,p_i) / sum_{j in B}[e^s(q_i,p_j) + e^s(q_i,p_j^+)
                                                   + e^s(q_i,q_j^cot) + e^s(q_i,p_j^-)] )

    so ``q_i``'s own ``p_i^+`` and ``q_i^cot`` are pushed away from ``q_i`` like negatives,
    the opposite of the clustering the paper describes (see :class:`SyntrieverClusterLoss`).
    """
    logits = _cluster_logits(anchors, positives, synthetic_positives, cot_queries, synthetic_negatives, scale)
    targets = torch.arange(anchors.shape[0], device=anchors.device)
    return F.cross_entropy(logits, targets)
