"""Training losses of Syntriever (Kim & Baek, NAACL Findings 2025, arXiv 2502.03824), one a file.

Each loss is an ``nn.Module`` that plugs into ``SentenceTransformerTrainer`` the same way the
built-in sentence-transformers losses do: it is built from the model, the trainer calls
``loss(sentence_features, labels)`` with one feature dict per text column (in dataset column
order) and the optional ``label`` column as ``labels``. Beside each class, a pure function on
embedding tensors computes the same equation, so it can be checked without a model:

- :class:`SyntrieverClusterLoss` / :func:`cluster_loss` (``cluster.py``): stage 1.
- :func:`authors_variant_loss` (``cluster.py``): the defect of the authors' public stage-1 code,
  kept only for tests and documentation. Do not train with it.
- :class:`PartialPlackettLuceLoss` / :func:`partial_plackett_luce_loss` (``plackett_luce.py``):
  stage 2.
- :class:`BradleyTerryLoss` / :func:`bradley_terry_loss` (``bradley_terry.py``): stage-2 ablation.

Similarities are ``s(a, b) = scale * cos(a, b)``; ``scale = 20`` is ``1 / tau`` with
``tau = 0.05``. Every loss is averaged over the batch.
"""

from syntriever.losses.base import SYNTRIEVER_CITATION, repeated_rows, scaled_cosine
from syntriever.losses.bradley_terry import BradleyTerryLoss, bradley_terry_loss
from syntriever.losses.cluster import UNVERIFIED, SyntrieverClusterLoss, authors_variant_loss, cluster_loss
from syntriever.losses.plackett_luce import PartialPlackettLuceLoss, partial_plackett_luce_loss

__all__ = [
    "SYNTRIEVER_CITATION",
    "UNVERIFIED",
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
