"""benchmarks/replicate_throughput.py --smoke runs on CPU and writes its table and JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow  # spawns three Python processes: 15-40 s on two shared cores
def test_throughput_benchmark_smoke(tmp_path: Path) -> None:
    env = {**os.environ, "OUT": str(tmp_path), "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "replicate_throughput.py"), "--smoke"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    doc = json.loads((tmp_path / "replicate_throughput_smoke.json").read_text())
    assert doc["smoke"] is True and not doc["skipped"]
    modes = {r["mode"]: r for r in doc["results"]}
    assert set(modes) == {"naive", "optimised", "shared", "stacked"}
    assert modes["shared"]["processes"] == 2 and len(modes["shared"]["workers"]) == 2
    assert modes["stacked"]["stacked_models"] == 2 and modes["stacked"]["steps"] > 0
    for r in doc["results"]:
        assert r["seq_per_s"] > 0 and abs(r["tokens_per_s"] - r["seq_per_s"] * r["seq_len"]) <= r["seq_len"]
        assert 0 < r["mfu"] < 1
    assert modes["naive"]["precision"] == "fp32" and modes["naive"]["attn"] == "sdpa"  # HF Trainer defaults
    assert "tiny" in proc.stdout and "x naive" in proc.stdout
