"""Shared pytest fixtures: a tiny SentenceTransformer built offline (no hub downloads)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

TINY_WORDS = [
    "the", "a", "an", "is", "are", "of", "in", "on", "to", "and", "or", "what", "who", "where",
    "when", "why", "how", "which", "does", "do", "cat", "cats", "dog", "dogs", "sun", "moon",
    "star", "stars", "water", "fire", "earth", "air", "tree", "trees", "river", "sea",
    "passage", "query", "relevant", "irrelevant", "answer", "question", "think", "step", "by",
    "let", "'", "s", "capital", "city", "country", "france", "paris", "bank", "money", "river",
    "interest", "rate", "vitamin", "protein", "gene", "cell", "disease", "drug", "study",
    "trial", "effect", "cause", "causes", "heat", "light", "plants", "grow",
]
TINY_DIM = 32


def _build_tiny_model_dir(target: Path) -> Path:
    """Write a random 2-layer BERT (hidden 32) and a WordPiece tokenizer to ``target``."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab = {token: index for index, token in enumerate(specials + sorted(set(TINY_WORDS)))}
    # transformers 5: the fast tokenizer takes the vocabulary itself (``vocab=``), not a file.
    tokenizer = BertTokenizerFast(vocab=vocab, do_lower_case=True)
    tokenizer.save_pretrained(str(target))
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=TINY_DIM,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    torch.manual_seed(0)
    BertModel(config).save_pretrained(str(target))
    return target


@pytest.fixture(scope="session")
def tiny_st_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Directory holding the tiny BERT + tokenizer (written once per session)."""
    return _build_tiny_model_dir(tmp_path_factory.mktemp("tiny_bert"))


@pytest.fixture
def tiny_st_model(tiny_st_model_dir: Path):
    """A fresh tiny SentenceTransformer (BERT, mean pooling, 32-dim) on CPU, in train mode."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer

    transformer = Transformer(str(tiny_st_model_dir), max_seq_length=32)
    model = SentenceTransformer(modules=[transformer, Pooling(TINY_DIM, "mean")], device="cpu")
    model.train()
    return model


@pytest.fixture(autouse=True)
def no_api_in_tests(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tests never see the user's API key or endpoint (nor pass them to the scripts they run):
    no test sends a paid request, and every default is the one of a machine without them."""
    for var in ("OPENAI_API_KEY", "SYNTRIEVER_LLM_API_KEY", "OPENAI_BASE_URL"):
        monkeypatch.delenv(var, raising=False)


def require(condition: bool, reason: str) -> None:
    """Skip when ``condition`` is false, except in CI (``CI=true``), where a missing prerequisite
    (the shared data, the llama-server binary) is a failure, not a skip."""
    if condition:
        return
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"CI requires it: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def scifact_dir() -> Path:
    """The real SciFact copy in ../shared/datasets (or SYNTRIEVER_MIRROR)."""
    from syntriever.paths import mirror_root

    root = mirror_root()
    path = root / "scifact" if root else None
    require(path is not None and (path / "qrels" / "test.tsv").is_file(),
            "real SciFact data not found in ../shared/datasets (set SYNTRIEVER_MIRROR)")
    return path


@pytest.fixture(scope="session")
def llama_server_bin() -> Path:
    """The built llama-server binary (scripts/build_llama_server.sh builds it)."""
    from syntriever.llm.local import server_binary

    try:
        return server_binary(build=False)
    except RuntimeError as err:
        require(False, str(err))
        raise
