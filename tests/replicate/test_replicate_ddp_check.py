"""benchmarks/replicate_ddp_check.py (run on 2 GPUs with NCCL by hand) passes with 2 CPU ranks over gloo."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow  # builds a tiny model, runs the pipeline and the checks in 2 processes: ~15 s on two shared cores
def test_ddp_check_two_gloo_ranks(tmp_path: Path) -> None:
    env = {**os.environ, "OUT": str(tmp_path), "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    cmd = [sys.executable, "-P", str(REPO / "benchmarks" / "replicate_ddp_check.py"), "--nproc", "2"]
    cmd += ["--device", "cpu", "--steps", "12", "--work", str(tmp_path / "work")]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    doc = json.loads((tmp_path / "replicate_ddp_check.json").read_text())
    assert proc.returncode == 0 and doc["ok"], proc.stdout[-3000:] + proc.stderr[-3000:]
    assert doc["backend"] == "gloo" and doc["world_size"] == 2
    checks = doc["checks"]
    assert {"plain_writes_rank0_only", "ddp_grad_vs_whole_batch", "train_phase_weights_identical"} <= set(checks)
    assert all(c["ok"] for c in checks.values())
    writes = checks["plain_writes_rank0_only"]["value"]
    assert writes[0]["save_encoder"] == 1 and writes[1] == {"write_json": 0, "save_encoder": 0}
    assert max(checks["ddp_grad_vs_whole_batch"]["value"]) < 1e-4
    assert [r["train_phase"]["steps"] for r in doc["ranks"]] == [12, 12]
    assert (tmp_path / "work" / "runs" / "plain" / "replication.json").exists()
    assert "passed" in proc.stdout
