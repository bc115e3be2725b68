"""The training entry point runs data-parallel: 2 CPU processes (gloo) through torchrun."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.test_data import make_dataset

ROOT = Path(__file__).resolve().parents[1]


def test_two_process_training_saves_a_model(tmp_path: Path, tiny_st_model) -> None:
    model_dir = tmp_path / "tiny"
    tiny_st_model.save(str(model_dir))
    data = tmp_path / "data"
    toy = make_dataset(data)
    (toy / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td0\t1\nq2\td3\t1\n")
    env = dict(os.environ, SYNTRIEVER_DATA=str(data), SYNTRIEVER_OUTPUT=str(tmp_path / "out"),
               OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(ROOT / "train_stage1.py"), str(model_dir), "toy", "--labelled-only", "--output-name", "ddp",
           "--max-steps", "2", "--batch-size", "1", "--max-seq-length", "16"]
    out = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    saved = tmp_path / "out" / "ddp-toy"
    assert (saved / "modules.json").is_file()
    card = json.loads((saved / "syntriever.json").read_text())
    assert card["steps"] == 2 and card["world_size"] == 2
    assert card["commands"] == [f"python train_stage1.py {model_dir} toy --labelled-only --output-name ddp "
                                "--max-steps 2 --batch-size 1 --max-seq-length 16"]
