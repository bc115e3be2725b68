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
