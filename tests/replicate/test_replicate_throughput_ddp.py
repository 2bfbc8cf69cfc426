"""benchmarks/replicate_throughput.py's ddp mode: torchrun of 2 CPU ranks (gloo) on the tiny model, in step."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]


def _run(tmp_path: Path, cases: str) -> tuple[dict[str, Any], str]:
    env = {**os.environ, "OUT": str(tmp_path), "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "replicate_throughput.py"), "--smoke", "--cases", cases],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    doc = json.loads((tmp_path / "replicate_throughput_smoke.json").read_text())
    assert not doc["skipped"]
    assert not list(tmp_path.glob("ddp-*.json"))  # the rank results were read and removed
    return {r["mode"]: r for r in doc["results"]}, proc.stdout


def _check_ddp_row(r: dict[str, Any], one: dict[str, Any]) -> None:
    workers = r["workers"]
    assert sorted(w["rank"] for w in workers) == [0, 1] and r["devices"] == 2 and r["backend"] == "gloo"
    assert len({w["steps"] for w in workers}) == 1 and r["steps"] >= 4  # the ranks stopped at the same step
    assert all(w["batch"] == r["batch_per_rank"] for w in workers)
    rate = sum(w["steps"] * w["batch"] / w["elapsed_s"] for w in workers)
    assert abs(r["seq_per_s"] - rate) <= 0.1 and r["seq_per_s"] > 0
    assert 0 < r["mfu"] < 1
    assert r["scaling_vs_optimised"] == round(r["seq_per_s"] / one["seq_per_s"], 3)


def test_throughput_ddp_mode_two_gloo_ranks(tmp_path: Path) -> None:
    rows, stdout = _run(tmp_path, "tiny:cls:optimised:1,tiny:cls:ddp:2")
    one, ddp = rows["optimised"], rows["ddp"]
    assert "devices" not in one and one["steps"] > 0  # the 1-process modes are unchanged
    # the recipe's batch (4 in --smoke) is the effective batch, split over the ranks as train_phase splits it
    assert (ddp["batch"], ddp["batch_per_rank"]) == (4, 2)
    _check_ddp_row(ddp, one)
    assert "ddp tiny cls: 2 gloo ranks x 2 = batch 4" in stdout


@pytest.mark.slow  # a second torchrun
def test_throughput_ddp_perrank_takes_the_whole_batch_per_rank(tmp_path: Path) -> None:
    rows, _ = _run(tmp_path, "tiny:cls:optimised:1,tiny:cls:ddp+perrank:2")
    assert (rows["ddp+perrank"]["batch"], rows["ddp+perrank"]["batch_per_rank"]) == (8, 4)
    _check_ddp_row(rows["ddp+perrank"], rows["optimised"])
