"""The pipeline runner re-runs exactly the steps whose command or upstream steps changed."""

from __future__ import annotations

from pathlib import Path

import pytest

from syntriever.pipeline import Pipeline, Step, format_reports


def writer(path: Path, text: str) -> list[str]:
    """A step that prepends ``text`` to ``path`` (so running twice is visible)."""
    code = (
        f"import pathlib; p = pathlib.Path({str(path)!r}); "
        f"p.write_text({text!r} + (p.read_text() if p.exists() else ''))"
    )
    return ["-c", code]


def chain(tmp: Path, b_text: str = "b") -> list[Step]:
    return [
        Step("a", writer(tmp / "a", "a"), [tmp / "a"]),
        Step("b", writer(tmp / "b", b_text), [tmp / "b"], ["a"]),
        Step("c", writer(tmp / "c", "c"), [tmp / "c"], ["b"]),
        Step("side", writer(tmp / "side", "s"), [tmp / "side"], ["a"]),
        Step("table", writer(tmp / "table", "t"), [tmp / "table"], ["c", "side"], always=True),
    ]


def statuses(reports: list) -> dict[str, str]:
    return {r.name: r.status for r in reports}


def test_reruns_only_what_changed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNTRIEVER_OUTPUT", str(tmp_path / "output"))
    first = Pipeline("toy", chain(tmp_path)).run()
    assert set(statuses(first).values()) == {"ran"}
    again = Pipeline("toy", chain(tmp_path)).run()
    assert statuses(again) == {
        "a": "up to date",
        "b": "up to date",
        "c": "up to date",
        "side": "up to date",
        "table": "ran",
    }
    assert (tmp_path / "c").read_text() == "c"  # nothing ran twice
    planned = Pipeline("toy", chain(tmp_path, b_text="B")).run(plan_only=True)
    assert statuses(planned) == {
        "a": "up to date",
        "b": "would run",
        "c": "would run",
        "side": "up to date",
        "table": "would run",
    }
    assert (tmp_path / "b").read_text() == "b" and (tmp_path / "table").read_text() == "tt"  # ran nothing
    changed = Pipeline("toy", chain(tmp_path, b_text="B")).run()
    assert statuses(changed) == {
        "a": "up to date",
        "b": "ran",
        "c": "ran",
        "side": "up to date",
        "table": "ran",
    }
    # a missing output re-runs its step even when the manifest matches
    (tmp_path / "side").unlink()
    assert statuses(Pipeline("toy", chain(tmp_path, b_text="B")).run())["side"] == "ran"
    assert "total" in format_reports(changed)


def test_failing_step_stops_the_run_and_is_not_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import subprocess

    monkeypatch.setenv("SYNTRIEVER_OUTPUT", str(tmp_path / "output"))
    steps = [Step("bad", ["-c", "raise SystemExit(3)"], [tmp_path / "never"])]
    with pytest.raises(subprocess.CalledProcessError):
        Pipeline("toy", steps).run()
    assert not (tmp_path / "output" / "pipeline" / "toy" / "bad.json").exists()


def test_pipeline_steps_for_a_dataset() -> None:
    import argparse

    from run_pipeline import build_steps

    def steps(**overrides: object) -> dict[str, Step]:
        args = argparse.Namespace(dataset="scifact", model="minilm", llm_model="qwen0.5b", llm_backend=None,
                                  k=None, judge_model=None, pairs=None, ablations=False, stage1_only=False,
                                  paper=False)
        vars(args).update(overrides)
        return {s.name: s for s in build_steps(args)}

    base = steps()
    assert list(base)[:4] == ["data", "eval bm25", "eval minilm", "synthesis"]
    assert base["eval minilm-final"].after == ["stage 2"] and base["stage 2"].after == ["comparisons"]
    assert base["table"].always and "eval minilm-sft" in base["table"].after
    changed = steps(k=6)
    assert [n for n in base if base[n].args != changed[n].args] == ["comparisons"]
    assert "stage 1 nocot" in steps(ablations=True) and "stage 2" not in steps(stage1_only=True)
    # synthesis by the embedded 0.5B model, judgements by the embedded 1.5B judge
    assert base["synthesis"].args[-1] == "qwen0.5b" and base["comparisons"].args[-1] == "qwen1.5b"
    assert base["stage 2"].args[base["stage 2"].args.index("--llm-model") + 1] == "qwen1.5b"
    remote = steps(llm_model="gpt-4o", llm_backend="batch")
    assert "gpt-4o" in remote["comparisons"].args and "qwen1.5b" not in remote["comparisons"].args
    assert "stage 2 bt" not in base and steps(ablations=True)["stage 2 bt"].after == ["comparisons"]
