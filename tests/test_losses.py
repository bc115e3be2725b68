"""Tests of syntriever.losses: the equations by hand, gradient directions, and model plumbing."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from syntriever.losses import (
    BradleyTerryLoss,
    PartialPlackettLuceLoss,
    SyntrieverClusterLoss,
    authors_variant_loss,
    bradley_terry_loss,
    cluster_loss,
    partial_plackett_luce_loss,
)

SCALE = 20.0
B, D = 4, 8


def _unit(generator: torch.Generator, rows: int = B, dim: int = D) -> torch.Tensor:
    return F.normalize(torch.randn(rows, dim, generator=generator, dtype=torch.float64), dim=-1)


def _cos(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.dot(a, b) / (a.norm() * b.norm()))


def _e(a: torch.Tensor, b: torch.Tensor) -> float:
    return math.exp(SCALE * _cos(a, b))


def _hand_cluster_loss(q, p, p_syn, q_cot, p_neg, flags, keep=None) -> float:
    """L1 of the paper (stage 1; ../shared/docs/method.md) by explicit loops over i and j
    (``keep[i] == 0``: p_i^- filtered)."""
    keep = keep or [1] * len(q)
    total = 0.0
    for i in range(len(q)):
        numerator = _e(q[i], p[i])
        if p_syn is not None and flags[i] == 1:
            numerator += _e(q[i], p_syn[i])
        if q_cot is not None:
            numerator += _e(q[i], q_cot[i])
        denominator = 0.0
        for j in range(len(q)):
            denominator += _e(q[i], p[j])
            for column in (p_syn, q_cot, p_neg):
                unknown_own = column is p_syn and i == j and flags[i] == -1
                filtered_own = column is p_neg and i == j and keep[i] == 0
                if column is not None and not unknown_own and not filtered_own:
                    denominator += _e(q[i], column[j])
        total += -math.log(numerator / denominator)
    return total / len(q)


def _hand_authors_variant(q, p, p_syn, q_cot, p_neg) -> float:
    total = 0.0
    for i in range(len(q)):
        denominator = sum(
            _e(q[i], column[j]) for j in range(len(q)) for column in (p, p_syn, q_cot, p_neg)
        )
        total += -math.log(_e(q[i], p[i]) / denominator)
    return total / len(q)


CLUSTER_CASES = {
    "all_verified": dict(use_cot=True, use_synthetic=True, flags=[1, 1, 1, 1]),
    "some_relabelled": dict(use_cot=True, use_synthetic=True, flags=[1, 0, 1, 0]),
    "unknown_verdict": dict(use_cot=True, use_synthetic=True, flags=[1, -1, 0, 1]),
    "no_cot": dict(use_cot=False, use_synthetic=True, flags=[0, 1, 1, 1]),
    "no_synthetic": dict(use_cot=True, use_synthetic=False, flags=None),
    "filtered_negatives": dict(use_cot=True, use_synthetic=True, flags=[1, 0, -1, 1], keep=[1, 0, 0, 1]),
    "no_cot_filtered": dict(use_cot=False, use_synthetic=True, flags=[1, 1, 1, 1], keep=[0, 1, 1, 1]),
}


@pytest.mark.parametrize("case", list(CLUSTER_CASES))
def test_cluster_loss_matches_hand_equation(case: str, tiny_st_model) -> None:
    options = CLUSTER_CASES[case]
    g = torch.Generator().manual_seed(11)
    q, p, p_syn, q_cot, p_neg = (_unit(g) for _ in range(5))
    if not options["use_cot"]:
        q_cot = None
    if not options["use_synthetic"]:
        p_syn = p_neg = None
    flags = options["flags"]
    verified = None if flags is None else torch.tensor(flags, dtype=torch.float32)
    keep = options.get("keep")
    keep_negative = None if keep is None else torch.tensor(keep)

    expected = _hand_cluster_loss(q, p, p_syn, q_cot, p_neg, flags or [1] * B, keep)
    ours = cluster_loss(q, p, p_syn, q_cot, p_neg, verified=verified, scale=SCALE,
                        keep_negative=keep_negative)
    assert ours.item() == pytest.approx(expected, abs=1e-6)
    if keep is not None:  # the trainer's two-column label [verified, keep_negative]
        verified = torch.stack([verified, keep_negative.float()], dim=1)

    # The module maps the columns (q, p, [p+], [q_cot], [p-]) onto the same equation.
    module = SyntrieverClusterLoss(
        tiny_st_model,
        scale=SCALE,
        use_cot=options["use_cot"],
        use_synthetic=options["use_synthetic"],
    )
    columns = [c for c in (q, p, p_syn, q_cot, p_neg) if c is not None]
    via_module = module.compute_loss_from_embeddings(columns, verified)
    assert via_module.item() == pytest.approx(expected, abs=1e-6)


def test_relabelled_loss_is_larger_and_flag_dtypes_agree() -> None:
    g = torch.Generator().manual_seed(3)
    q, p, p_syn, q_cot, p_neg = (_unit(g) for _ in range(5))
    as_bool = cluster_loss(q, p, p_syn, q_cot, p_neg, torch.tensor([True, False, True, False]))
    as_int = cluster_loss(q, p, p_syn, q_cot, p_neg, torch.tensor([1, 0, 1, 0]))
    as_float = cluster_loss(q, p, p_syn, q_cot, p_neg, torch.tensor([1.0, 0.0, 1.0, 0.0]))
    verified = cluster_loss(q, p, p_syn, q_cot, p_neg, None)
    assert as_bool.item() == as_int.item() == as_float.item()
    # Dropping a term from a numerator can only raise the loss.
    assert as_bool.item() > verified.item()
    with pytest.raises(ValueError, match="verification flags"):
        cluster_loss(q, p, p_syn, q_cot, p_neg, torch.tensor([1.0, 0.5, 1.0, 1.0]))
    with pytest.raises(ValueError, match="without a synthetic positive"):
        cluster_loss(q, p, None, q_cot, None, torch.tensor([1, 0, 1, 1]))


def test_filtered_negative_leaves_only_its_own_query_loss() -> None:
    g = torch.Generator().manual_seed(5)
    q, p, p_syn, q_cot, p_neg = (_unit(g) for _ in range(5))
    keep_all = cluster_loss(q, p, p_syn, q_cot, p_neg, keep_negative=torch.ones(B))
    assert keep_all.item() == pytest.approx(cluster_loss(q, p, p_syn, q_cot, p_neg).item(), abs=1e-12)
    # Removing a denominator term can only lower the loss.
    assert cluster_loss(q, p, p_syn, q_cot, p_neg, keep_negative=torch.tensor([0, 1, 1, 1])) < keep_all
    # A filtered p_0^- gets no gradient from L1(q_0) but still repels the other queries.
    p_neg = p_neg.clone().requires_grad_(True)
    alone = cluster_loss(q[:1], p[:1], p_syn[:1], q_cot[:1], p_neg[:1], keep_negative=torch.tensor([0]))
    (grad,) = torch.autograd.grad(alone, p_neg)
    assert grad.abs().sum().item() == 0.0
    batch = cluster_loss(q, p, p_syn, q_cot, p_neg, keep_negative=torch.tensor([0, 1, 1, 1]))
    (grad,) = torch.autograd.grad(batch, p_neg)
    assert grad[0].abs().sum().item() > 0.0
    with pytest.raises(ValueError, match="without a synthetic negative"):
        cluster_loss(q, p, None, q_cot, None, keep_negative=torch.ones(B))
    with pytest.raises(ValueError, match="keep_negative flags must be 0 or 1"):
        cluster_loss(q, p, p_syn, q_cot, p_neg, keep_negative=torch.tensor([1, 2, 1, 1]))


def test_cluster_loss_without_cot_and_synthetic_equals_mnrl(tiny_st_model) -> None:
    """With only (q, p) columns the loss is InfoNCE with in-batch negatives.

    MultipleNegativesRankingLoss in sentence-transformers 6.2.0 with its defaults
    (directions=("query_to_doc",), partition_mode="joint", hardness_mode=None) is exactly that,
    with no extra terms, so it serves as the reference here.
    """
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    g = torch.Generator().manual_seed(5)
    q, p, p_syn, p_neg = (_unit(g) for _ in range(4))
    mnrl = MultipleNegativesRankingLoss(tiny_st_model, scale=SCALE)

    ours = SyntrieverClusterLoss(tiny_st_model, scale=SCALE, use_cot=False, use_synthetic=False)
    reference = mnrl.compute_loss_from_embeddings([q, p], None)
    assert ours.compute_loss_from_embeddings([q, p], None).item() == pytest.approx(
        reference.item(), abs=1e-6
    )
    assert cluster_loss(q, p, scale=SCALE).item() == pytest.approx(reference.item(), abs=1e-6)

    # Every synthetic positive relabelled: MNRL with two hard negatives (p+, p-) per query.
    no_cot = SyntrieverClusterLoss(tiny_st_model, scale=SCALE, use_cot=False)
    relabelled = no_cot.compute_loss_from_embeddings([q, p, p_syn, p_neg], torch.zeros(B))
    reference = mnrl.compute_loss_from_embeddings([q, p, p_syn, p_neg], None)
    assert relabelled.item() == pytest.approx(reference.item(), abs=1e-6)


def test_column_count_must_match_options(tiny_st_model) -> None:
    g = torch.Generator().manual_seed(0)
    five = [_unit(g) for _ in range(5)]
    with pytest.raises(ValueError, match="expects 4 text columns"):
        SyntrieverClusterLoss(tiny_st_model, use_cot=False).compute_loss_from_embeddings(five, None)
    with pytest.raises(ValueError, match="expects 3 text columns"):
        SyntrieverClusterLoss(tiny_st_model, use_synthetic=False).compute_loss_from_embeddings(
            five, None
        )
    with pytest.raises(ValueError, match="expects 2 text columns"):
        SyntrieverClusterLoss(
            tiny_st_model, use_cot=False, use_synthetic=False
        ).compute_loss_from_embeddings(five, None)
    with pytest.raises(ValueError, match="expects 3 text columns"):
        PartialPlackettLuceLoss(tiny_st_model).compute_loss_from_embeddings(five[:2], None)
    with pytest.raises(ValueError, match="expects 3 text columns"):
        BradleyTerryLoss(tiny_st_model).compute_loss_from_embeddings(five[:4], None)
    with pytest.raises(ValueError, match="flag synthetic texts"):
        SyntrieverClusterLoss(tiny_st_model, use_synthetic=False).compute_loss_from_embeddings(
            five[:3], torch.tensor([1, 0, 1, 1])
        )


def test_authors_variant_matches_its_hand_equation() -> None:
    g = torch.Generator().manual_seed(2)
    q, p, p_syn, q_cot, p_neg = (_unit(g) for _ in range(5))
    expected = _hand_authors_variant(q, p, p_syn, q_cot, p_neg)
    got = authors_variant_loss(q, p, p_syn, q_cot, p_neg, scale=SCALE)
    assert got.item() == pytest.approx(expected, abs=1e-6)
    assert got.item() > cluster_loss(q, p, p_syn, q_cot, p_neg, scale=SCALE).item()


def test_gradient_pulls_own_positives_in_unlike_authors_variant() -> None:
    """A gradient-descent step on p_i^+ and q_i^cot moves them toward q_i; the defect pushes away.

    The setting makes the claim hold by construction for every i. The queries are orthonormal
    and each query's cluster members are q_i plus a perturbation of fixed length in the
    orthogonal complement of all queries, so (a) cos(q_k, p_i^+) = cos(q_k, q_i^cot) = 0 for
    k != i: the in-batch terms that push p_i^+ away from the other queries q_k have no
    first-order effect on cos(q_i, p_i^+); (b) q_i's three positives are equally close to it, so
    none of them is starved of weight in the log-sum-exp numerator. Then only q_i's own term
    acts: the cluster loss pulls (its weight e^s/num - e^s/den is > 0) and the authors' variant
    pushes (p_i^+, q_i^cot are negatives of q_i there). With arbitrary random embeddings the
    in-batch terms can move cos(q_i, p_i^+) either way through geometry, for both losses,
    which is why this test does not use them.
    """
    g = torch.Generator().manual_seed(1234)
    basis, _ = torch.linalg.qr(torch.randn(D, D, generator=g, dtype=torch.float64))
    q = basis[:, :B].T
    complement = basis[:, B:].T

    def member() -> torch.Tensor:
        direction = F.normalize(torch.randn(B, D - B, generator=g, dtype=torch.float64), dim=-1)
        return F.normalize(q + 2.0 * direction @ complement, dim=-1)

    p, p_syn, q_cot = member(), member(), member()
    p_neg = _unit(g)
    off_diagonal = ~torch.eye(B, dtype=torch.bool)
    for column in (p, p_syn, q_cot):
        assert (q @ column.T)[off_diagonal].abs().max() < 1e-12

    lr = 1e-3
    changes = {}
    for name, loss_fn in (("cluster", cluster_loss), ("authors", authors_variant_loss)):
        p_syn_leaf = p_syn.clone().requires_grad_(True)
        q_cot_leaf = q_cot.clone().requires_grad_(True)
        loss_fn(q, p, p_syn_leaf, q_cot_leaf, p_neg, scale=SCALE).backward()
        changes[name] = {
            column: F.cosine_similarity(q, start - lr * leaf.grad) - F.cosine_similarity(q, start)
            for column, start, leaf in (("p+", p_syn, p_syn_leaf), ("q_cot", q_cot, q_cot_leaf))
        }

    for column in ("p+", "q_cot"):
        pulled = changes["cluster"][column]
        pushed = changes["authors"][column]
        # Every i, and far above float64 round-off (~1e-16).
        assert (pulled > 1e-10).all(), (column, pulled)
        assert (pushed < -1e-10).all(), (column, pushed)


def _pl_top_two_probability_by_enumeration(scores: list[float], first: int, second: int) -> float:
    """Sum over every order of the remaining items of P(first, second, order) under PL."""
    rest = [k for k in range(len(scores)) if k not in (first, second)]
    total = 0.0
    for order in itertools.permutations(rest):
        ranking = [first, second, *order]
        probability = 1.0
        for position, item in enumerate(ranking):
            remaining = ranking[position:]
            probability *= math.exp(scores[item]) / sum(math.exp(scores[k]) for k in remaining)
        total += probability
    return total


def test_partial_plackett_luce_matches_permutation_enumeration() -> None:
    g = torch.Generator().manual_seed(7)
    batch = 3
    q, c_pos, c_neg = (_unit(g, rows=batch) for _ in range(3))
    passages = [*c_pos, *c_neg]  # item k < batch: c_k^+, item batch + k: c_k^-
    expected = 0.0
    for i in range(batch):
        scores = [SCALE * _cos(q[i], c) for c in passages]
        orders = math.factorial(len(passages) - 2)
        assert orders == 24
        expected += -math.log(_pl_top_two_probability_by_enumeration(scores, i, batch + i))
    expected /= batch
    got = partial_plackett_luce_loss(q, c_pos, c_neg, scale=SCALE)
    assert got.item() == pytest.approx(expected, abs=1e-6)


def test_bradley_terry_matches_log_sigmoid_of_gap() -> None:
    g = torch.Generator().manual_seed(9)
    q, c_pos, c_neg = (_unit(g) for _ in range(3))
    expected = 0.0
    for i in range(B):
        gap = SCALE * (_cos(q[i], c_pos[i]) - _cos(q[i], c_neg[i]))
        expected += -math.log(1.0 / (1.0 + math.exp(-gap)))
    expected /= B
    got = bradley_terry_loss(q, c_pos, c_neg, scale=SCALE)
    assert got.item() == pytest.approx(expected, abs=1e-6)


def test_repeated_query_in_pl_batch_raises(tiny_st_model) -> None:
    g = torch.Generator().manual_seed(4)
    q, c_pos, c_neg = (_unit(g) for _ in range(3))
    q[2] = q[0]
    with pytest.raises(ValueError, match="batch holds a repeated query"):
        partial_plackett_luce_loss(q, c_pos, c_neg)
    assert torch.isfinite(partial_plackett_luce_loss(q, c_pos, c_neg, check_distinct=False))

    # The module also catches a repeated query text when dropout makes the embeddings differ.
    queries = ["what is the sun", "where is paris", "what is the sun"]
    features = [
        tiny_st_model.preprocess(texts)
        for texts in (queries, ["the sun is a star"] * 3, ["the moon"] * 3)
    ]
    with pytest.raises(ValueError, match="batch holds a repeated query"):
        PartialPlackettLuceLoss(tiny_st_model)(features, None)


# ------------------------------------------------------------------------------------------
# End to end with a tiny real SentenceTransformer
# ------------------------------------------------------------------------------------------

QUERIES = ["what is the sun", "where is paris", "how do plants grow", "what causes disease"]
COLUMNS = {
    "passage": ["the sun is a star", "paris is the capital of france", "plants grow in light",
                "a gene can cause disease"],
    "synthetic_positive": ["the sun is a star of light", "paris is a city in france",
                           "trees and plants grow with water", "disease causes in a cell"],
    "cot_query": [f"{text} let's think step by step" for text in QUERIES],
    "synthetic_negative": ["the moon", "the river and the sea", "fire and heat", "money and bank"],
}


def _loss_and_features(name: str, model):
    if name == "cluster":
        texts = [QUERIES, *COLUMNS.values()]
        return SyntrieverClusterLoss(model), texts, torch.tensor([True, False, True, True])
    texts = [QUERIES, COLUMNS["passage"], COLUMNS["synthetic_negative"]]
    loss = PartialPlackettLuceLoss(model) if name == "pl" else BradleyTerryLoss(model)
    return loss, texts, None


@pytest.mark.parametrize("name", ["cluster", "pl", "bt"])
def test_losses_run_end_to_end_on_tiny_model(name: str, tiny_st_model) -> None:
    loss, texts, labels = _loss_and_features(name, tiny_st_model)
    features = [tiny_st_model.preprocess(column) for column in texts]
    value = loss(features, labels)
    assert value.ndim == 0 and torch.isfinite(value)
    value.backward()
    grads = [p.grad for p in tiny_st_model.parameters() if p.requires_grad]
    assert any(grad is not None and grad.abs().sum() > 0 for grad in grads)
    assert all(torch.isfinite(grad).all() for grad in grads if grad is not None)
    assert loss.citation.strip().startswith("@inproceedings")
    assert loss.get_config_dict()["scale"] == 20.0


def test_trainer_passes_label_column_as_relabel_flags(tiny_st_model, tmp_path) -> None:
    """One real SentenceTransformerTrainer step: the ``label`` column arrives as ``labels``."""
    # ruff files `datasets` as first-party because of the repo's datasets/ folder; it is HF's.
    from datasets import Dataset
    from sentence_transformers import (
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
    )

    data = {"query": QUERIES[:2], **{k: v[:2] for k, v in COLUMNS.items()}, "label": [True, False]}
    seen: dict[str, object] = {}

    class RecordingClusterLoss(SyntrieverClusterLoss):
        def forward(self, sentence_features, labels=None):
            features = list(sentence_features)
            seen["columns"], seen["labels"] = len(features), labels
            return super().forward(features, labels)

    args = SentenceTransformerTrainingArguments(
        output_dir=str(tmp_path),
        max_steps=1,
        per_device_train_batch_size=2,
        report_to="none",
        use_cpu=True,
        save_strategy="no",
        disable_tqdm=True,
    )
    trainer = SentenceTransformerTrainer(
        model=tiny_st_model,
        args=args,
        train_dataset=Dataset.from_dict(data),
        loss=RecordingClusterLoss(tiny_st_model),
    )
    output = trainer.train()
    assert seen["columns"] == 5
    assert seen["labels"].dtype == torch.bool
    assert sorted(seen["labels"].tolist()) == [False, True]
    assert math.isfinite(output.training_loss)

    # With a negative filter the label is [verified, keep_negative] per example.
    data["label"] = [[1, 1], [0, 0]]
    trainer.train_dataset = Dataset.from_dict(data)
    output = trainer.train()
    assert tuple(seen["labels"].shape) == (2, 2)
    assert sorted(seen["labels"].tolist()) == [[0, 0], [1, 1]]
    assert math.isfinite(output.training_loss)


def test_labelled_weight_adds_the_labelled_pairs_infonce_term() -> None:
    g = torch.Generator().manual_seed(11)
    q, p, p_syn, q_cot, p_neg = (_unit(g) for _ in range(5))
    flags = [1, 0, 1, 1]
    infonce = 0.0  # -log(e^s(q_i,p_i) / the same denominator as L1), by hand
    for i in range(B):
        denominator = sum(_e(q[i], c[j]) for j in range(B) for c in (p, p_syn, q_cot, p_neg))
        infonce += -math.log(_e(q[i], p[i]) / denominator) / B
    expected = _hand_cluster_loss(q, p, p_syn, q_cot, p_neg, flags) + 0.5 * infonce
    got = cluster_loss(q, p, p_syn, q_cot, p_neg, torch.tensor(flags), labelled_weight=0.5)
    assert got.item() == pytest.approx(expected, rel=1e-9)
    # the term pulls the labelled passage harder than the paper's loss does
    p = p.clone().requires_grad_(True)
    pulls = []
    for weight in (0.0, 1.0):
        loss = cluster_loss(q, p, p_syn, q_cot, p_neg, torch.tensor(flags), labelled_weight=weight)
        (grad,) = torch.autograd.grad(loss, p)
        pulls.append(-(grad * q).sum(dim=1))  # descent direction along q_i: toward the query
    assert bool((pulls[1] > pulls[0]).all())
