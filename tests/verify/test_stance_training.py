"""train_stance runs end to end on CPU for a few steps and writes a loadable adapter with its record."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
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


def test_antonym_swaps_one_direction_word_outside_hyphenated_names() -> None:
    from claimscope.verify import train_stance as ts

    assert ts.antonym("Increased CD4 levels lead to lower mortality.") == (
        "Decreased CD4 levels lead to lower mortality.")
    assert ts.antonym("X up-regulates Y.") == "X down-regulates Y."
    assert ts.antonym("AMP-activated protein kinase activation reduces fibrosis.") == (
        "AMP-activated protein kinase inhibition reduces fibrosis.")
    assert ts.antonym("Sex determination in Galliformes.") is None


def test_antonym_augmentation_labels_and_selection_scores() -> None:
    from claimscope.verify import train_stance as ts

    corpus = {1: {"doc_id": 1, "title": "t", "abstract": ["Drug A raised B.", "Unrelated.", "Also unrelated."]}}
    claims = [{"id": 7, "claim": "Drug A increases B.", "cited_doc_ids": [1],
               "evidence": {"1": [{"label": "SUPPORT", "sentences": [0]}]}},
              {"id": 8, "claim": "Drug A decreases B.", "cited_doc_ids": [1],
               "evidence": {"1": [{"label": "CONTRADICT", "sentences": [0]}]}}]
    pairs = ts.build_pairs(claims, corpus, {}, 1, negation=False, antonyms="double")
    aug = {(p["claim_id"], p["kind"], p["label"], p["claim"]) for p in pairs if p["kind"] in ts.AUGMENTED}
    # the supported claim gives a refuted swap and a supported negated swap; the refuted claim gives nothing
    assert aug == {(7, "antonym", "CONTRADICT", "Drug A decreases B."),
                   (7, "double_negated", "SUPPORT", "Drug A does not decrease B.")}
    assert not [p for p in ts.build_pairs(claims, corpus, {}, 1, negation=False) if p["kind"] in ts.AUGMENTED]
    m = {"macro_f1": 0.5, "support_f1": 0.2, "contradict_f1": 0.4, "rationale_sc_accuracy": 0.7}
    assert [ts.selection_score(m, s) for s in ("macro_f1", "sc_accuracy")] == [0.5, 0.7]
    assert abs(ts.selection_score(m, "sc_f1") - 0.3) < 1e-12


@pytest.mark.slow
@pytest.mark.skipif(not SCIFACT.exists(), reason="SciFact data not available")
def test_stance_grid_runs_variants_and_summarises(tmp_path: Path) -> None:
    out = tmp_path / "grid"
    tiny = "--max-steps 4 --batch-size 8 --max-eval-pairs 48 --eval-every 2 --max-train-pairs 300"
    args = ["--scifact", str(SCIFACT), "--base", str(ROOT / ".data" / "minilm"), "--out", str(out), "--device", "cpu",
            "--work", str(tmp_path / "work"), "--variants", "base,combo", "--threads", "1", "--extra", tiny]
    subprocess.run([sys.executable, "-P", "verify/stance_grid.py", *args], cwd=ROOT, check=True, timeout=900)
    rows = json.loads((out / "summary.json").read_text())
    assert set(rows) == {"shipped", "base", "combo"} and "combo" in (out / "summary.txt").read_text()
    assert rows["combo"]["status"]["returncode"] == 0 and len(rows["combo"]["history"]) > 0
    # the device tool returns at most 8 files: OUT holds the summaries and one archive of the run folders
    assert sorted(f.name for f in out.iterdir()) == ["runs-1.tar", "summary.json", "summary.txt"]
    with tarfile.open(out / "runs-1.tar") as tar:
        assert {"base/training.json", "combo/adapter_model.safetensors", "combo/oof.jsonl"} <= set(tar.getnames())
    work = tmp_path / "work"
    record = json.loads((work / "combo" / "training.json").read_text())
    assert record["hyper"]["full_top"] == 1 and record["hyper"]["sc_loss"] == 1.0
    assert record["data"]["pairs_train"]["kind:antonym"] > 0
    # the whole top layer is in the file, in fp16: about 5 MB against 2.7 MB for LoRA alone
    assert 4e6 < (work / "combo" / "adapter_model.safetensors").stat().st_size < 6e6
    from claimscope.verify.stance import load_bundled

    scorer = load_bundled(device="cpu", adapter_dir=work / "combo", calibrate=False)
    assert scorer.score([("a claim", "some evidence")]).shape == (1, 3)
    # a run still going at the deadline is stopped and reported, and the driver says so by its exit status
    late = subprocess.run([sys.executable, "-P", "verify/stance_grid.py", *args[:4], "--out", str(tmp_path / "late"),
                           "--device", "cpu", "--threads", "1",
                           "--variants", "base", "--deadline", "2", "--extra", tiny], cwd=ROOT, timeout=300)
    rows = json.loads((tmp_path / "late" / "summary.json").read_text())
    assert late.returncode == 1 and rows["base"]["status"]["stopped_at_deadline"] is True


@pytest.mark.slow
@pytest.mark.skipif(not SCIFACT.exists(), reason="SciFact data not available")
def test_one_fold_trains_blind_on_the_other_folds(tmp_path: Path) -> None:
    out = tmp_path / "folds"
    base = ["--scifact", str(SCIFACT), "--out", str(out), "--folds", "3", "--max-claims", "18", "--fold-epochs", "0.5",
            "--batch-size", "8", "--device", "cpu", "--lr", "1e-3", "--lora-r", "4"]
    for k in (0, 2):
        subprocess.run([sys.executable, "-P", "verify/train_stance.py", *base, "--only-fold", str(k)], cwd=ROOT,
                       check=True, timeout=900)
    records = [json.loads((out / f"fold-{k}" / "fold.json").read_text()) for k in (0, 2)]
    # the folds partition the claims; each fold's predictions cover exactly its own claims
    assert not set(records[0]["claims"]) & set(records[1]["claims"]) and len(records[0]["claims"]) == 6
    for k, rec in zip((0, 2), records, strict=True):
        rows = [json.loads(line) for line in (out / f"oof-fold-{k}.jsonl").read_text().splitlines()]
        assert {r["claim_id"] for r in rows} == set(rec["claims"]) and all(r["fold"] == k for r in rows)
        assert rec["steps"] >= 1 and (out / f"fold-{k}" / "adapter_model.safetensors").exists()


def test_steps_folds_gives_the_final_adapter_the_folds_mean_step_count() -> None:
    from claimscope.verify import train_stance as ts

    # 10 claims in 5 folds; claim c has c+1 SUPPORT pairs and no NEUTRAL ones, so balance keeps every pair
    folds = {c: c % 5 for c in range(10)}
    pairs = [{"claim_id": c, "label": "SUPPORT"} for c in range(10) for _ in range(c + 1)]
    base = ["--scifact", "x", "--out", "x", "--base", "x", "--folds", "5", "--batch-size", "4", "--fold-epochs", "2"]
    args = ts.parse_args([*base, "--only-fold", "-1"])
    # fold k trains on 55 - (k+1) - (k+6) pairs: 48, 46, 44, 42, 40 -> 12, 12, 11, 11, 10 batches, x 2 epochs
    assert [ts.fold_steps(args, pairs, folds, k) for k in range(5)] == [24, 24, 22, 22, 20]
    assert ts.planned_steps(args, pairs, folds, -1) == 28  # all 55 pairs: 14 batches x 2
    assert ts.planned_steps(ts.parse_args([*base, "--only-fold", "-1", "--steps", "folds"]), pairs, folds, -1) == 22
    assert ts.planned_steps(ts.parse_args([*base, "--only-fold", "2", "--steps", "7"]), pairs, folds, 2) == 7
    with pytest.raises(SystemExit):
        ts.planned_steps(ts.parse_args([*base, "--only-fold", "0", "--steps", "folds"]), pairs, folds, 0)
    with pytest.raises(SystemExit):
        ts.parse_args([*base, "--steps", "many"])
