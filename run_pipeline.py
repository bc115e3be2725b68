"""Run the whole Syntriever pipeline on one dataset with the embedded defaults.

    python run_pipeline.py scifact [--model minilm] [--llm-model qwen0.5b] [--skip-llm]

Steps: data -> BM25 and zero-shot baselines -> synthesis -> labelled-only baseline -> stage 1
-> table (stage 2 steps join when they exist). A step whose output exists is skipped; LLM steps
resume from what they wrote. Per-step wall time is printed at the end.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

from syntriever.cli import setup_logging  # noqa: E402
from syntriever.llm.config import LLMConfig  # noqa: E402
from syntriever.paths import dataset_dir, file_safe, output_root, results_root  # noqa: E402
from syntriever.synthesis import synthetic_path  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("dataset")
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--llm-model", default="qwen0.5b")
    parser.add_argument("--skip-llm", action="store_true", help="use committed LLM outputs only")
    args = parser.parse_args()
    setup_logging()
    py, ds, model = sys.executable, args.dataset, file_safe(args.model)
    synthetic = synthetic_path(ds, LLMConfig(model=args.llm_model))
    steps: list[tuple[str, list[str], Path]] = [
        ("data", [py, "datasets/download.py", ds], dataset_dir(ds) / "qrels"),
        ("bm25", [py, "evaluate.py", "bm25", ds], results_root() / ds / "bm25.json"),
        ("zero-shot", [py, "evaluate.py", args.model, ds], results_root() / ds / f"{model}.json"),
        ("synthesis", [py, "datasets/parse_synthetic.py", ds, "--llm-model", args.llm_model], synthetic),
        ("labelled-only", [py, "train_stage1.py", args.model, ds, "--labelled-only"],
         output_root() / f"{model}-labelled-{ds}"),
        ("eval labelled-only", [py, "evaluate.py", f"{model}-labelled", ds],
         results_root() / ds / f"{model}-labelled.json"),
        ("stage 1", [py, "train_stage1.py", args.model, ds, "--llm-model", args.llm_model],
         output_root() / f"{model}-sft-{ds}"),
        ("eval stage 1", [py, "evaluate.py", f"{model}-sft", ds], results_root() / ds / f"{model}-sft.json"),
    ]
    timings: list[tuple[str, str]] = []
    for name, cmd, output in steps:
        if output.exists():
            timings.append((name, "skipped (output present)"))
            continue
        if name == "synthesis" and args.skip_llm:
            raise SystemExit(f"--skip-llm: no committed synthetic data at {synthetic}")
        print(f"\n=== {name}: {' '.join(cmd[1:])}", flush=True)
        start = time.perf_counter()
        subprocess.run(cmd, cwd=ROOT, check=True)
        timings.append((name, f"{time.perf_counter() - start:.0f} s"))
    subprocess.run([py, "evaluate.py", "--table", ds, "--baseline", args.model], cwd=ROOT, check=True)
    print("\nstep times:")
    for name, took in timings:
        print(f"  {name:20s} {took}")


if __name__ == "__main__":
    main()
