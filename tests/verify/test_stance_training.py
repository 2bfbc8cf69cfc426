"""train_stance runs end to end on CPU for a few steps and writes a loadable adapter with its record."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCIFACT = Path("/work/shared/benchmarks/scifact")
if not SCIFACT.exists():
    SCIFACT = ROOT / ".data" / "scifact"


def test_negation_rules() -> None:
    from claimscope.verify import train_stance as ts

    assert ts.negate("RUNX is not expressed in skin.") == "RUNX is expressed in skin."
    assert ts.negate("Albendazole is used to treat worms.") == "Albendazole is not used to treat worms."
    assert ts.negate("GATA3 regulates self-renewal.") == "GATA3 does not regulate self-renewal."
    assert ts.negate("Sex determination in Galliformes.") is None
    assert ts._windows([2, 3, 5]) == [[2], [3], [5], [2, 3]]


@pytest.mark.slow
@pytest.mark.skipif(not SCIFACT.exists(), reason="SciFact data not available")
def test_plain_script_smoke(tmp_path: Path) -> None:
    out = tmp_path / "adapter"
    # as a plain script, as on the GPU machine where claimscope is not installed: importing it must fail the run, and
    # verify/numbers.py must not shadow the standard library's numbers module
    poison = tmp_path / "poison" / "claimscope"
    poison.mkdir(parents=True)
    (poison / "__init__.py").write_text("raise ImportError('train_stance.py must not import claimscope')\n")
    env = dict(os.environ, PYTHONPATH=str(poison.parent))
    args = ["--scifact", str(SCIFACT), "--out", str(out), "--max-steps", "10", "--batch-size", "8",
            "--max-eval-pairs", "32", "--eval-every", "5", "--device", "cpu", "--max-train-pairs", "400",
            "--lr", "5e-4,1e-3"]
    subprocess.run([sys.executable, "verify/train_stance.py", *args], cwd=ROOT, check=True, timeout=600, env=env)
    record = json.loads((out / "training.json").read_text())
    assert record["hyper"]["steps"] == 10 and [len(r["history"]) for r in record["runs"]] == [2, 2]
    assert record["selected"]["lr"] in (5e-4, 1e-3) and len(record["data"]["holdout_claim_ids"]) == 162
    assert record["data"]["pairs_train"]["SUPPORT"] > 0 and record["data"]["pairs_train"]["NEUTRAL"] > 0
    assert (out / "adapter_model.safetensors").stat().st_size < 4_000_000
    assert len((out / "oof.jsonl").read_text().splitlines()) == 32

    from claimscope.verify.stance import load_bundled

    scorer = load_bundled(device="cpu", adapter_dir=out, calibrate=False)
    assert scorer.score([("a claim", "some evidence")]).shape == (1, 3)


@pytest.mark.slow
@pytest.mark.skipif(not SCIFACT.exists(), reason="SciFact data not available")
def test_cross_fitting_gives_every_claim_an_out_of_fold_prediction(tmp_path: Path) -> None:
    out = tmp_path / "cf"
    args = ["--scifact", str(SCIFACT), "--out", str(out), "--folds", "2", "--max-claims", "16", "--epochs", "1",
            "--batch-size", "8", "--device", "cpu", "--lr", "1e-3", "--lora-r", "4"]
    subprocess.run([sys.executable, "-P", "verify/train_stance.py", *args], cwd=ROOT, check=True, timeout=900)
    record = json.loads((out / "training.json").read_text())
    folds = record["data"]["claim_fold"]
    assert len(folds) == 16 and sorted(set(folds.values())) == [0, 1]
    rows = [json.loads(line) for line in (out / "oof.jsonl").read_text().splitlines()]
    # each row was predicted by the adapter of the fold its claim was held out from, and every claim has rows
    assert all(folds[str(r["claim_id"])] == r["fold"] for r in rows)
    assert {str(r["claim_id"]) for r in rows} == set(folds)
    assert record["folds"][1]["steps"] >= 1 and record["selected"]["lora_r"] == 4
    for k in ("0", "1"):
        assert (out / f"fold-{k}" / "adapter_model.safetensors").exists()
    from claimscope.verify.stance import load_bundled

    scorer = load_bundled(device="cpu", adapter_dir=out / "fold-1", calibrate=False)
    assert scorer.score([("a claim", "some evidence")]).shape == (1, 3)
