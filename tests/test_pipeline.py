"""The pipeline runner re-runs exactly the steps whose command or upstream steps changed."""

from __future__ import annotations

import json
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
    # a step re-run because its output was deleted made new outputs: everything downstream re-runs
    (tmp_path / "a").unlink()
    assert set(statuses(Pipeline("toy", chain(tmp_path, b_text="B")).run()).values()) == {"ran"}
    assert (tmp_path / "c").read_text() == "ccc"
    assert statuses(Pipeline("toy", chain(tmp_path, b_text="B")).run())["c"] == "up to date"
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


def flag(step: Step, name: str) -> str:
    return step.args[step.args.index(name) + 1]


def test_pipeline_steps_for_a_dataset(monkeypatch: pytest.MonkeyPatch) -> None:
    import argparse

    from run_pipeline import build_steps

    def steps(**overrides: object) -> dict[str, Step]:
        args = argparse.Namespace(dataset="scifact", model="minilm", llm_model="qwen0.5b", llm_backend=None,
                                  compare_top_k=None, judge_model=None, pairs=None, ablations=False,
                                  stage1_only=False, paper=False)
        vars(args).update(overrides)
        return {s.name: s for s in build_steps(args)}

    base = steps()
    assert list(base)[:4] == ["data", "eval bm25", "eval minilm", "synthesis"]
    assert base["eval minilm-final"].after == ["stage 2"] and base["stage 2"].after == ["comparisons"]
    assert base["table"].always and "eval minilm-sft" in base["table"].after
    changed = steps(compare_top_k=6)
    assert [n for n in base if base[n].args != changed[n].args] == ["comparisons"]
    assert "stage 1 nocot" in steps(ablations=True) and "stage 2" not in steps(stage1_only=True)
    # the embedded pipeline trains in fp32 (its committed judge answers are over an fp32 stage 1)
    trainings = [s for s in base.values() if s.args[0].startswith("train_stage")]
    assert len(trainings) >= 3 and all("--no-bf16" in s.args for s in trainings)
    assert not any("--no-bf16" in s.args for s in steps(paper=True).values())
    # synthesis by the embedded 0.5B model, judgements by the embedded 1.5B judge
    assert flag(base["synthesis"], "--llm-model") == "qwen0.5b"
    assert flag(base["comparisons"], "--llm-model") == flag(base["stage 2"], "--llm-model") == "qwen1.5b"
    remote = steps(llm_model="gpt-4o", llm_backend="batch")
    assert "gpt-4o" in remote["comparisons"].args and "qwen1.5b" not in remote["comparisons"].args
    assert flag(remote["synthesis"], "--llm-backend") == "batch" and remote["synthesis"].llm.model == "gpt-4o"
    assert "stage 2" in remote and "eval minilm-final" in remote  # the paper profile's LLM: no tag
    # another synthesis LLM names every model trained on its data (syntriever.names.data_tag)
    other = steps(llm_model="qwen1.5b")
    assert other["stage 1"].outputs[0].name == "minilm-sft-qwen1.5b-scifact"
    assert other["retrieval"].args[1] == "minilm-sft-qwen1.5b" and "eval minilm-sft-qwen1.5b-final" in other
    # an API key or a base URL in the environment does not send the embedded models' requests away
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-0000000000")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    with_key = steps()
    assert [flag(with_key[s], "--llm-backend") for s in ("synthesis", "comparisons")] == ["local", "local"]
    assert [s.args for s in with_key.values()] == [s.args for s in base.values()]
    assert flag(steps(llm_model="gpt-4o")["comparisons"], "--llm-backend") == "online"
    # a hub id as the encoder: its result file has a file-safe name, so the step can be up to date
    hub = steps(model="intfloat/e5-base-v2")["eval intfloat/e5-base-v2"]
    assert hub.outputs[0].name == "intfloat__e5-base-v2.json"
    assert "stage 2 bt" not in base and steps(ablations=True)["stage 2 bt"].after == ["comparisons"]


def test_llm_steps_count_only_what_they_sent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from syntriever.jsonl import JsonlAppender, write_jsonl
    from syntriever.llm import runner as llm_runner
    from syntriever.llm.config import LLMConfig
    from syntriever.llm.cost import BATCH_DISCOUNT, PRICES_PER_M
    from syntriever.llm.requests import chat_request, load_results
    from syntriever.llm.runner import Sent, execute_requests
    from tests.helpers import result

    def fake_runner(config, requests_path, results_path, *, desc, requests, done):  # answers the pending
        assert done == (set(load_results(results_path)) if results_path.is_file() else set())
        with JsonlAppender(results_path) as out:
            for req in requests:
                if req["custom_id"] not in done:
                    out.append(result(req["custom_id"], [("yes", {"yes": -0.1})], prompt_tokens=50))
        return object()

    monkeypatch.setattr(llm_runner, "run_requests", fake_runner)
    requests = [chat_request(f"r{i}", "hi", model="gpt-4o", temperature=0.0, max_tokens=4) for i in range(3)]
    write_jsonl(tmp_path / "step.results.jsonl", [result("r0", [("no", {"no": -0.2})], prompt_tokens=70)])
    config = LLMConfig(backend="batch", model="gpt-4o")
    results, sent = execute_requests(config, tmp_path, "step", requests, desc="test")
    assert results is not None and set(results) == {"r0", "r1", "r2"}
    assert sent == Sent(2, 100, 2)  # r0 was on disk already (resumed or seeded): not sent again
    assert execute_requests(config, tmp_path, "step", requests, desc="test")[1] == Sent()

    monkeypatch.setenv("SYNTRIEVER_OUTPUT", str(tmp_path / "output"))
    out = tmp_path / "syn.jsonl"
    (tmp_path / "syn.summary.json").write_text(json.dumps({
        "prompt_tokens": 10**6, "completion_tokens": 10**6,  # every result behind the output
        "sent_this_run": {"requests": 2, "prompt_tokens": 100, "completion_tokens": 2}}))
    step = Step("synthesis", ["-c", f"open({str(out)!r}, 'w')"], [out], llm=config)
    report = Pipeline("toy", [step]).run()[0]
    price_in, price_out = PRICES_PER_M["gpt-4o"]
    assert (report.prompt_tokens, report.completion_tokens) == (100, 2)
    assert report.cost_usd == pytest.approx((100 * price_in + 2 * price_out) / 1e6 * BATCH_DISCOUNT)
