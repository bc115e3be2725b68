"""Encoding precision: native bfloat16 detection, auto choice, cache keys, result files, bf16 training."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from syntriever import precision
from syntriever.cli import add_search_args, add_train_args, search_options, settings_from_args
from syntriever.evaluation import evaluate_model
from syntriever.jsonl import write_jsonl
from syntriever.precision import cpu_info, native_bf16, resolve_precision
from syntriever.retrieval import corpus_key, encode, encode_corpus
from tests.test_retrieval_scale import tiny_corpus

# abridged /proc/cpuinfo of two real machines: this one (AMD EPYC, avx512_bf16) and an AVX2-only one
BF16_CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC
flags\t\t: fpu sse sse2 avx avx2 fma avx512f avx512bw avx512vl avx512_bf16 avx512_vnni
bogomips\t: 4800.00
"""
AVX2_CPUINFO = """processor\t: 0
model name\t: Intel(R) Core(TM) i7-8700 CPU @ 3.20GHz
flags\t\t: fpu sse sse2 avx avx2 fma f16c
"""
AMX_CPUINFO = "model name\t: Intel(R) Xeon(R) Platinum 8480+\nflags\t\t: avx2 avx512f amx_bf16 amx_tile\n"


@pytest.fixture
def cpuinfo_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Point the detection at a written /proc/cpuinfo; returns a function that writes it."""
    path = tmp_path / "cpuinfo"
    monkeypatch.setattr(precision, "CPUINFO", path)

    def write(text: str) -> Path:
        path.write_text(text)
        return path

    return write


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SYNTRIEVER_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "embeddings"


def test_native_bf16_reads_the_cpu_flags() -> None:
    assert native_bf16(BF16_CPUINFO) and native_bf16(AMX_CPUINFO)
    assert not native_bf16(AVX2_CPUINFO)
    assert not native_bf16("processor\t: 0\n")  # no flags line
    # a flag that merely contains the name does not count
    assert not native_bf16("flags\t: avx512_bf16x avx2\n")
    model, flags = cpu_info(BF16_CPUINFO)
    assert model == "AMD EPYC" and {"avx512_bf16", "avx2"} <= flags


def test_auto_picks_fp32_without_the_flag(cpuinfo_file) -> None:
    cpuinfo_file(AVX2_CPUINFO)
    assert not native_bf16()
    assert resolve_precision("auto") == "fp32"
    assert resolve_precision("bf16") == "bf16"  # asked for explicitly: emulated, with a warning
    cpuinfo_file(BF16_CPUINFO)
    assert native_bf16()
    assert resolve_precision("auto") == "bf16"
    assert resolve_precision("fp32") == "fp32"
    assert resolve_precision("auto", "cuda") == "fp32"
    # multi-process workers do not inherit autocast: fp32, whatever was asked
    assert resolve_precision("bf16", pooled=True) == resolve_precision("auto", pooled=True) == "fp32"
    with pytest.raises(ValueError, match="precision must be one of"):
        resolve_precision("fp16")


def test_without_proc_cpuinfo_only_torchs_own_check_turns_bf16_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(precision, "CPUINFO", tmp_path / "absent")
    for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        monkeypatch.delattr(torch.cpu, name, raising=False)
    assert not native_bf16() and resolve_precision("auto") == "fp32"
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True, raising=False)
    assert native_bf16()


def test_search_flags_carry_the_precision() -> None:
    parser = argparse.ArgumentParser()
    add_search_args(parser)
    assert search_options(parser.parse_args([]))["precision"] == "auto"
    assert search_options(parser.parse_args(["--precision", "fp32"]))["precision"] == "fp32"
    with pytest.raises(SystemExit):
        parser.parse_args(["--precision", "fp16"])


def test_cache_key_differs_by_precision(tiny_st_model, private_cache: Path) -> None:
    corpus = tiny_corpus(12)
    fp32, bf16 = corpus_key(tiny_st_model, corpus, "fp32"), corpus_key(tiny_st_model, corpus, "bf16")
    assert fp32 != bf16
    assert corpus_key(tiny_st_model, corpus) == fp32  # embeddings cached before precisions keep their key
    for used in ("fp32", "bf16"):
        encode_corpus(tiny_st_model, corpus, batch_size=4, precision=used)
    assert sorted(p.name for p in private_cache.glob("*.npy")) == sorted([f"{fp32}.npy", f"{bf16}.npy"])


def _tiny_beir(folder: Path) -> Path:
    corpus = tiny_corpus(30, seed=3)
    (folder / "qrels").mkdir(parents=True)
    write_jsonl(folder / "corpus.jsonl", ({"_id": d, **doc} for d, doc in corpus.items()))
    qids = sorted(corpus)[:4]
    write_jsonl(folder / "queries.jsonl", ({"_id": f"q-{d}", "text": corpus[d]["text"]} for d in qids))
    lines = ["query-id\tcorpus-id\tscore", *(f"q-{d}\t{d}\t1" for d in qids)]
    (folder / "qrels" / "test.tsv").write_text("\n".join(lines) + "\n")
    return folder


def test_result_config_records_the_precision_used(
    tiny_st_model_dir: Path, tmp_path: Path, cpuinfo_file
) -> None:
    folder = _tiny_beir(tmp_path / "tiny-beir")

    def used(name: str, **kwargs) -> str:
        record, _ = evaluate_model(str(tiny_st_model_dir), folder, top_k=5, results_root=tmp_path / name,
                                   **kwargs)
        return record["config"]["precision"]

    assert used("fp32", precision="fp32") == "fp32"
    assert used("bf16", precision="bf16") == "bf16"
    cpuinfo_file(AVX2_CPUINFO)
    assert used("auto-avx2") == "fp32"
    cpuinfo_file(BF16_CPUINFO)
    assert used("auto-bf16") == "bf16"
    # asked for bf16 with a multi-process pool: what was used (fp32) is recorded
    assert used("pool", precision="bf16", devices=["cpu"]) == "fp32"


def test_pool_refuses_bf16(tiny_st_model) -> None:
    with pytest.raises(ValueError, match="runs in fp32"):
        encode(tiny_st_model, ["cats"], "document", pool={"processes": []}, precision="bf16")


@pytest.mark.skipif(not native_bf16(), reason="this CPU has no native bfloat16 (avx512_bf16 or amx_bf16)")
def test_bf16_encoding_matches_fp32_on_tiny_model(tiny_st_model) -> None:
    tiny_st_model.eval()
    texts = [doc["text"] for doc in tiny_corpus(40, seed=4).values()]
    fp32 = encode(tiny_st_model, texts, "document", batch_size=8, progress=False, precision="fp32")
    bf16 = encode(tiny_st_model, texts, "document", batch_size=8, progress=False, precision="bf16")
    assert bf16.dtype == np.float32 and bf16.shape == fp32.shape == (40, 32)
    np.testing.assert_allclose(np.linalg.norm(bf16, axis=1), 1.0, atol=1e-5)
    cosine = (fp32 * bf16).sum(axis=1)
    assert cosine.min() > 0.99, cosine.min()
    assert not np.array_equal(fp32, bf16)  # autocast did change the arithmetic


def test_trainer_bf16_is_the_default_only_on_a_cpu_with_native_bf16(cpuinfo_file) -> None:
    parser = argparse.ArgumentParser()
    add_train_args(parser, "test")
    cpuinfo_file(AVX2_CPUINFO)
    assert not settings_from_args(parser.parse_args([])).bf16  # emulated bf16 is slower
    assert settings_from_args(parser.parse_args(["--bf16"])).bf16
    cpuinfo_file(BF16_CPUINFO)
    default = settings_from_args(parser.parse_args([]))
    assert default.bf16 == (not torch.cuda.is_available()) and not (default.bf16 and default.fp16)
    assert not settings_from_args(parser.parse_args(["--no-bf16"])).bf16


def test_bf16_flag_and_cpu_training_run(tiny_st_model, tmp_path: Path) -> None:
    from datasets import Dataset
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    from syntriever.training import train

    parser = argparse.ArgumentParser()
    add_train_args(parser, "test")
    assert not settings_from_args(parser.parse_args(["--no-bf16"])).bf16
    settings = settings_from_args(parser.parse_args(["--bf16", "--paper", "--max-steps", "2", "--batch-size",
                                                     "4", "--warmup-steps", "0", "--max-seq-length", "16"]))
    assert settings.bf16 and not settings.fp16  # one mixed precision, even with --paper on a GPU
    texts = [doc["text"] for doc in tiny_corpus(16, seed=5).values()]
    data = Dataset.from_dict({"query": texts[:8], "positive": texts[8:]})
    card = train(tiny_st_model, data, MultipleNegativesRankingLoss(tiny_st_model), settings,
                 tmp_path / "tiny-bf16", {})
    assert card["steps"] == 2 and math.isfinite(card["final_train_loss"]) and card["settings"]["bf16"]
    assert all(p.dtype == torch.float32 for p in tiny_st_model.parameters())  # mixed, not bf16 weights
