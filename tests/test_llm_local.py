"""The llama-server binary's location is decided in syntriever/llm/local.py alone: the build script
is handed the folder and version, and refuses to guess them."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from syntriever.llm import local


def test_build_script_refuses_to_run_without_its_folder_and_version() -> None:
    done = subprocess.run(["bash", str(local.BUILD_SCRIPT)], capture_output=True, text=True)
    assert done.returncode == 2
    assert "usage" in done.stderr and "DEST_DIR VERSION" in done.stderr


def test_missing_binary_is_built_into_the_folder_local_py_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SYNTRIEVER_LLAMA_SERVER", raising=False)
    monkeypatch.setenv("SYNTRIEVER_CACHE", str(tmp_path))
    calls: list[list[str]] = []

    def fake_run(command: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        calls.append(command)
        return subprocess.CompletedProcess(command, 0, stdout=f"building\n{command[2]}/llama-server\n")

    monkeypatch.setattr(local.subprocess, "run", fake_run)
    binary = local.server_binary()
    assert calls == [["bash", str(local.BUILD_SCRIPT), str(tmp_path / local.SERVER_DIR),
                      local.LLAMA_CPP_PYTHON_VERSION]]
    assert binary == tmp_path / local.SERVER_DIR / "llama-server"
    with pytest.raises(RuntimeError, match="not built; run `bash scripts/setup.sh`"):
        local.server_binary(build=False)


def test_a_preset_is_assembled_from_its_parts_only_when_size_and_hash_match(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import hashlib

    parts = [tmp_path / "p1", tmp_path / "p2"]
    parts[0].write_bytes(b"GGUF" * 10)
    parts[1].write_bytes(b"tail")
    whole = b"GGUF" * 10 + b"tail"
    monkeypatch.setattr(local, "cache_root", lambda: tmp_path / "cache")
    monkeypatch.setattr(local, "_part_paths", lambda preset: parts)
    good = local.GGUFPreset("toy", "", "x{}", "x{}", 2, len(whole), hashlib.sha256(whole).hexdigest())
    bad = local.GGUFPreset("bad", "", "x{}", "x{}", 2, len(whole), "0" * 64)
    monkeypatch.setitem(local.PRESETS, "toy", good)
    monkeypatch.setitem(local.PRESETS, "bad", bad)
    path = local.gguf_path("toy")
    assert path.read_bytes() == whole and local.model_sha256(path) == good.sha256
    with pytest.raises(RuntimeError, match="expected 44 and 0000"):
        local.gguf_path("bad")
    # nothing of the failed assembly is left: no model, no stamp, no temp file
    assert sorted(p.name for p in path.parent.iterdir()) == ["toy.gguf", "toy.verified"]
