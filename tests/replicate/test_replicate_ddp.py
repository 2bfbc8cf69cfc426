"""DDP through torchrun with the same entry point: 2 CPU processes, gloo backend."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import yaml

from .conftest import tiny_recipe_dict

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_torchrun_two_processes_gloo(tiny_model: Path, task_data: Path, tmp_path: Path) -> None:
    d = tiny_recipe_dict(tiny_model, task_data, intermediate=["commonsenseqa"], targets=["pawsx", "tatoeba"])
    d["train"]["max_steps"] = 2
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(d))
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1"]
    cmd += ["--master_port", str(_free_port()), "-m", "replicate.run", "--config", str(cfg), "--out", str(out)]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads((out / "replication.json").read_text())
    assert doc["environment"]["world_size"] == 2
    p2 = doc["phase2"]["commonsenseqa-s1"]
    # effective batch 4 = 2 ranks x 2 per rank, 2 steps: 8 examples seen in total
    assert p2["steps"] == 2 and p2["examples"] == 8
    assert {c["target"] for c in doc["cells"]} == {"pawsx", "tatoeba"}
    assert (out / "phase2" / "commonsenseqa-s1" / "encoder" / "config.json").exists()
    assert "pawsx" in proc.stdout  # rank 0 printed the comparison lines
