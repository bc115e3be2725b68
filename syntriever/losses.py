"""Training losses of Syntriever (Kim & Baek, NAACL Findings 2025, arXiv 2502.03824).

Each loss is an ``nn.Module`` that plugs into ``SentenceTransformerTrainer`` the same way the
built-in sentence-transformers losses do: it is built from the model, the trainer calls
``loss(sentence_features, labels)`` with one feature dict per text column (in dataset column
order) and the optional ``label`` column as ``labels``.

The math lives in pure functions on embedding tensors, so it can be checked without a model:

- :func:`cluster_loss` — stage 1, soft-nearest-neighbour style cluster loss
  (:class:`SyntrieverClusterLoss`).
- :func:`authors_variant_loss` — the defect of the authors' public stage-1 code, kept only for
  tests and documentation. Do not train with it.
- :func:`partial_plackett_luce_loss` — stage 2 (:class:`PartialPlackettLuceLoss`).
- :func:`bradley_terry_loss` — stage-2 ablation (:class:`BradleyTerryLoss`).

Similarities are ``s(a, b) = scale * cos(a, b)``; ``scale = 20`` is ``1 / tau`` with
``tau = 0.05``. Every loss is averaged over the batch.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import torch
import torch.nn.functional as F
from sentence_transformers import SentenceTransformer
from torch import Tensor, nn

try:  # sentence-transformers >= 6: one merged forward pass for the candidate columns
    from sentence_transformers.base.losses.merged_forward import embed_columns as _st_embed_columns
except ImportError:  # pragma: no cover - other layouts: one forward per column
    _st_embed_columns = None

logger = logging.getLogger(__name__)

__all__ = [
    "SYNTRIEVER_CITATION",
    "BradleyTerryLoss",
    "PartialPlackettLuceLoss",
    "SyntrieverClusterLoss",
    "authors_variant_loss",
    "bradley_terry_loss",
    "cluster_loss",
    "partial_plackett_luce_loss",
    "repeated_rows",
    "scaled_cosine",
]

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

_REPEATED_QUERY_HINT = (
    "queries in a batch must be distinct, otherwise another example of the same query becomes a "
    "false in-batch negative; train with batch_sampler=BatchSamplers.NO_DUPLICATES"
)


# --------------------------------------------------------------------------------------------
# Pure functions on embeddings
# --------------------------------------------------------------------------------------------


def scaled_cosine(a: Tensor, b: Tensor, scale: float = 20.0) -> Tensor:
    """Return the ``(len(a), len(b))`` matrix ``scale * cos(a_i, b_j)``."""
    return scale * (F.normalize(a, p=2, dim=-1) @ F.normalize(b, p=2, dim=-1).T)


def _check_columns(named: dict[str, Tensor | None]) -> tuple[int, int]:
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


UNVERIFIED = -1  # verification answer unparseable or missing: p_i^+ is left out of L1(q_i)


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


def repeated_rows(x: Tensor, rtol: float = 1e-5, atol: float = 1e-8) -> list[tuple[int, int]]:
    """Return the pairs ``(i, j)``, ``i < j``, of rows of ``x`` that are ``torch.allclose``."""
    with torch.no_grad():
        x = x.detach()
        close = torch.isclose(x[:, None, :], x[None, :, :], rtol=rtol, atol=atol).all(dim=-1)
        close = torch.triu(close, diagonal=1)
        return [(int(i), int(j)) for i, j in close.nonzero().tolist()]


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
    _check_columns(
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
) -> Tensor:
    """Stage-1 cluster loss of Syntriever, averaged over the batch.

    With ``s = scale * cos`` and ``m_i`` the verification flag of ``p_i^+``::

        L1(q_i) = -log( [e^s(q_i,p_i) + m_i e^s(q_i,p_i^+) + e^s(q_i,q_i^cot)]
                        / sum_{j in B} [e^s(q_i,p_j) + e^s(q_i,p_j^+)
                                        + e^s(q_i,q_j^cot) + e^s(q_i,p_j^-)] )

    The denominator runs over every ``j`` (``j = i`` included). A relabelled ``p_i^+``
    (``m_i = 0``) leaves the numerator but stays in the denominator, i.e. it becomes a second
    hard negative of ``q_i``. Columns passed as ``None`` drop out of both sums (the ablations);
    with only ``anchors`` and ``positives`` this is InfoNCE with in-batch negatives.

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
    return (log_denominator - log_numerator).mean()


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
    the opposite of the clustering the paper describes (see :func:`cluster_loss`).
    """
    logits = _cluster_logits(anchors, positives, synthetic_positives, cot_queries, synthetic_negatives, scale)
    targets = torch.arange(anchors.shape[0], device=anchors.device)
    return F.cross_entropy(logits, targets)


def partial_plackett_luce_loss(
    anchors: Tensor,
    preferred: Tensor,
    less_preferred: Tensor,
    scale: float = 20.0,
    check_distinct: bool = True,
) -> Tensor:
    """Stage-2 partial Plackett-Luce loss, averaged over the batch.

    ::

        L2(q_i) = -log[ e^s(q_i,c_i^+) / sum_{j in B}(e^s(q_i,c_j^+) + e^s(q_i,c_j^-)) ]
                  -log[ e^s(q_i,c_i^-) / (e^s(q_i,c_i^-)
                                          + sum_{j in B, j != i}(e^s(q_i,c_j^+) + e^s(q_i,c_j^-))) ]

    This is ``-log`` of the Plackett-Luce probability that ``c_i^+`` is ranked first and
    ``c_i^-`` second among the ``2B`` in-batch passages, the order of the rest marginalised out.

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
    batch_size, _ = _check_columns(
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


def bradley_terry_loss(
    anchors: Tensor, preferred: Tensor, less_preferred: Tensor, scale: float = 20.0
) -> Tensor:
    """Bradley-Terry loss ``-log sigmoid(s(q_i,c_i^+) - s(q_i,c_i^-))``, averaged over the batch."""
    _check_columns({"anchors": anchors, "preferred": preferred, "less_preferred": less_preferred})
    gap = scale * (
        F.cosine_similarity(anchors, preferred, dim=-1)
        - F.cosine_similarity(anchors, less_preferred, dim=-1)
    )
    return -F.logsigmoid(gap).mean()


# --------------------------------------------------------------------------------------------
# sentence-transformers loss modules
# --------------------------------------------------------------------------------------------


def _embed(model: nn.Module, features: list[dict[str, Any]]) -> list[Tensor]:
    """One ``sentence_embedding`` tensor per column, as the built-in 6.x losses obtain them."""
    if _st_embed_columns is not None:
        return _st_embed_columns(model, features)
    return [model(f)["sentence_embedding"] for f in features]  # pragma: no cover


def _check_num_columns(loss: nn.Module, features: list[Any], expected: int, layout: str) -> None:
    if len(features) != expected:
        raise ValueError(
            f"{type(loss).__name__} expects {expected} text columns ({layout}), got "
            f"{len(features)}; check the dataset columns and the loss options"
        )


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


class _ScaledCosineLoss(nn.Module):
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


class SyntrieverClusterLoss(_ScaledCosineLoss):
    """Stage-1 loss of Syntriever: cluster a query with all its relevant texts.

    The group ``{q_i, p_i, p_i^+, q_i^cot}`` is one cluster (soft-nearest-neighbour style,
    log-sum-exp over the positives); with ``s = scale * cos`` and ``m_i`` the verification flag::

        L1(q_i) = -log( [e^s(q_i,p_i) + m_i e^s(q_i,p_i^+) + e^s(q_i,q_i^cot)]
                        / sum_{j in B} [e^s(q_i,p_j) + e^s(q_i,p_j^+)
                                        + e^s(q_i,q_j^cot) + e^s(q_i,p_j^-)] )

    averaged over the batch. The denominator includes ``j = i``. Hard negatives only appear in
    denominators. The CoT-augmented query ``q_i^cot`` is embedded as a passage-side positive.

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
    column from the text columns and passes it as ``labels``. A relabelled ``p_i^+`` leaves the
    numerator and stays in the denominator (a second hard negative). A two-column label
    ``[verified, keep_negative]`` also says, per example, whether ``p_i^-`` stays a hard negative
    of ``q_i`` (1) or was filtered out (0; see :func:`cluster_loss`). Without a label column
    (``labels=None``) every ``p_i^+`` counts as verified, which is the "self-verification off"
    ablation; a warning is logged once. With ``use_synthetic=False`` the flags must be absent
    or all 1.

    Batches should hold distinct queries (use ``BatchSamplers.NO_DUPLICATES``).

    Reference: Kim & Baek, "Syntriever: How to Train Your Retriever with Synthetic Data from
    LLMs", NAACL Findings 2025, arXiv 2502.03824, stage 1. This implements the equation of the
    paper, not the authors' public code (see :func:`authors_variant_loss`).

    Args:
        model: the SentenceTransformer to train.
        scale: ``1 / tau``; 20 is ``tau = 0.05``.
        use_cot: whether the ``q^cot`` column is present (paper, Table 3 ablation).
        use_synthetic: whether the ``p^+`` and ``p^-`` columns are present (Table 3 ablation).
    """

    def __init__(
        self,
        model: SentenceTransformer,
        scale: float = 20.0,
        use_cot: bool = True,
        use_synthetic: bool = True,
    ) -> None:
        super().__init__(model, scale)
        self.use_cot = use_cot
        self.use_synthetic = use_synthetic
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
        _check_num_columns(self, features, len(layout), ", ".join(layout))
        return self.compute_loss_from_embeddings(_embed(self.model, features), labels)

    def compute_loss_from_embeddings(
        self, embeddings: list[Tensor], labels: Tensor | None
    ) -> Tensor:
        """The loss from one embedding tensor per column (in :attr:`column_layout` order)."""
        layout = self.column_layout
        _check_num_columns(self, embeddings, len(layout), ", ".join(layout))
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
        )

    def get_config_dict(self) -> dict[str, Any]:
        return {"scale": self.scale, "use_cot": self.use_cot, "use_synthetic": self.use_synthetic}


class PartialPlackettLuceLoss(_ScaledCosineLoss):
    """Stage-2 loss of Syntriever: partial Plackett-Luce ranking of LLM preference triples.

    Columns: (query ``q_i``, preferred passage ``c_i^+``, less-preferred passage ``c_i^-``);
    no label. With ``s = scale * cos``::

        L2(q_i) = -log[ e^s(q_i,c_i^+) / sum_{j in B}(e^s(q_i,c_j^+) + e^s(q_i,c_j^-)) ]
                  -log[ e^s(q_i,c_i^-) / (e^s(q_i,c_i^-)
                                          + sum_{j in B, j != i}(e^s(q_i,c_j^+) + e^s(q_i,c_j^-))) ]

    averaged over the batch. This is ``-log`` of the Plackett-Luce probability of the partial
    ranking ``c_i^+ > c_i^- > {the other in-batch passages}``, the order among the rest
    marginalised out. The paper's "regularisation" toward the stage-1 model is this contrastive
    form itself (both ``c^+`` and ``c^-`` must stay above the in-batch passages); there is no KL
    term and no reference model.

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
        _check_num_columns(self, features, 3, "q, c+, c-")
        if self.check_distinct_queries:
            pairs = _repeated_token_rows(features[0])
            if pairs:
                raise ValueError(
                    f"batch holds a repeated query: query rows {pairs} have identical tokens; "
                    + _REPEATED_QUERY_HINT
                )
        return self.compute_loss_from_embeddings(_embed(self.model, features), labels)

    def compute_loss_from_embeddings(
        self, embeddings: list[Tensor], labels: Tensor | None
    ) -> Tensor:
        """The loss from the (q, c+, c-) embedding columns; ``labels`` is unused."""
        _check_num_columns(self, embeddings, 3, "q, c+, c-")
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


class BradleyTerryLoss(_ScaledCosineLoss):
    """Bradley-Terry preference loss, the stage-2 ablation of Syntriever.

    Columns: (query ``q_i``, preferred passage ``c_i^+``, less-preferred passage ``c_i^-``);
    no label. With ``s = scale * cos``::

        L(q_i) = -log sigmoid( s(q_i,c_i^+) - s(q_i,c_i^-) )

    averaged over the batch. No in-batch negatives, so repeated queries are harmless.

    Reference: Kim & Baek, "Syntriever: How to Train Your Retriever with Synthetic Data from
    LLMs", NAACL Findings 2025, arXiv 2502.03824 (ablation of stage 2, which it underperforms).

    Args:
        model: the SentenceTransformer to train.
        scale: ``1 / tau``; 20 is ``tau = 0.05``.
    """

    def forward(
        self, sentence_features: Iterable[dict[str, Tensor]], labels: Tensor | None = None
    ) -> Tensor:
        features = list(sentence_features)
        _check_num_columns(self, features, 3, "q, c+, c-")
        return self.compute_loss_from_embeddings(_embed(self.model, features), labels)

    def compute_loss_from_embeddings(
        self, embeddings: list[Tensor], labels: Tensor | None
    ) -> Tensor:
        """The loss from the (q, c+, c-) embedding columns; ``labels`` is unused."""
        _check_num_columns(self, embeddings, 3, "q, c+, c-")
        return bradley_terry_loss(*embeddings, scale=self.scale)
