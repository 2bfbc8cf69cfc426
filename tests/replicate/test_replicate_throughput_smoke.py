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


def test_profile_kernel_kinds_from_h200_kernel_names() -> None:
    """Kernel names as the H200 profile of the stacked step printed them (cuDNN's attention kernel names contain
    `sm90_` like cuBLAS's matmuls: attention must be told apart first)."""
    import importlib.util

    path = REPO / "benchmarks" / "replicate_throughput.py"
    spec = importlib.util.spec_from_file_location("replicate_throughput", path)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    kinds = {
        "nvjet_sm90_tst_256x128_64x4_1x2_h_bz_coopA_NNT": "matmul",
        "cudnn_generated_fort_native_sdpa_sm90_flash_bprop_wgmma_f16_knob_26_64x64x64_1x4x1_cga1": "attention",
        "void cudnn::fusion::compute_dot_do_o_specialized<true, 64>(void const*, void const*)": "other",
        "triton_poi_fused__to_copy_add_copy_copy__div_mul_select_sqrt_sub_0": "triton",
        "_rows_adamw_kernel": "other",
    }
    assert {name: bench._kernel_kind(name) for name in kinds} == kinds


def test_variant_flags_and_inductor_knobs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`+nodrop` turns the hidden dropout off (and says so in the result), `+cg` is accepted by the stacked path,
    `--inductor KEY=VALUE` sets inductor's config (nested keys too) for the run."""
    import importlib.util

    import torch._inductor.config as inductor_config

    path = REPO / "benchmarks" / "replicate_throughput.py"
    spec = importlib.util.spec_from_file_location("replicate_throughput_flags", path)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    monkeypatch.setenv("OUT", str(tmp_path))
    monkeypatch.setattr(inductor_config, "combo_kernels", inductor_config.combo_kernels)
    monkeypatch.setattr(inductor_config.triton, "cooperative_reductions",
                        inductor_config.triton.cooperative_reductions)  # fmt: skip
    rc = bench.main(["--smoke", "--seconds", "0.2", "--inductor", "combo_kernels=True",
                     "--inductor", "triton.cooperative_reductions=False",
                     "--cases", "tiny:cls:stacked:2,tiny:cls:stacked+nodrop+cg:2"])  # fmt: skip
    assert rc == 0
    assert inductor_config.combo_kernels is True and inductor_config.triton.cooperative_reductions is False
    doc = json.loads((tmp_path / "replicate_throughput_smoke.json").read_text())
    modes = {r["mode"]: r for r in doc["results"]}
    assert modes["stacked"]["hidden_dropout"] == 0.1 and modes["stacked+nodrop+cg"]["hidden_dropout"] == 0.0
    assert modes["stacked+nodrop+cg"]["steps"] > 0
