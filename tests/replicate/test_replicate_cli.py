"""`claimscope replicate --dry-run`: the plan of the paper's grid and its GPU-hours from measured rates."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from claimscope.cli import main
from claimscope.replicate.config import load_recipe
from claimscope.replicate.plan import load_rates, plan_recipe, plan_totals, seq_rate


def _total(out: str) -> list[float]:
    line = next(x for x in out.splitlines() if x.startswith("TOTAL"))
    return [float(v) for v in line.split()[-4:]]


def test_paper_grid_dry_run_prints_full_grid(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["-q", "replicate", "--config", "paper-grid", "--dry-run", "--rates", str(tmp_path / "none.json")]) == 0
    out = capsys.readouterr().out
    # 17 phase-2 groups x 9 targets + 16 intermediate runs + 8 MLM co-training rows
    # (multi-task trains 6 tasks: +5 rows per MLM setting)
    assert "issue 8 hand measurements" in out
    assert len(re.findall(r"-> tatoeba", out)) == 17
    assert "multitask+MLM s1: mlm co-training" in out
    naive, optimised, shared, stacked = _total(out)
    assert naive > optimised > shared > 0
    assert stacked == shared  # the figures have no stacked rate: stacking falls back to sharing
    # the figures: 373 / 720 / 1200 seq/s -> the ratios carry straight through
    assert naive / optimised == pytest.approx(720 / 373, rel=1e-2)
    assert naive / shared == pytest.approx(1200 / 373, rel=1e-2)
    # the FLOPs formula reproduces the MFU for its own rates (373 seq/s = 9 %, 1,200 = 29 %)
    mfu = re.search(r"naive ([\d.]+)%, optimised ([\d.]+)%, shared ([\d.]+)%", out)
    assert (
        mfu and float(mfu.group(1)) == pytest.approx(9.0, abs=0.3) and float(mfu.group(3)) == pytest.approx(29, abs=1)
    )


def test_rates_from_benchmark_json(tmp_path: Path) -> None:
    bench = {"device": "NVIDIA H200", "created": "x", "results": [
        {"model": "xlm-roberta-large", "seq_len": 128, "mode": "naive", "seq_per_s": 400.0},
        {"model": "xlm-roberta-large", "seq_len": 128, "mode": "optimised", "seq_per_s": 800.0},
        {"model": "xlm-roberta-large", "seq_len": 128, "mode": "shared", "seq_per_s": 1600.0},
        {"model": "xlm-roberta-large", "seq_len": 384, "mode": "shared", "seq_per_s": 100.0},
        {"model": "xlm-roberta-large", "seq_len": 128, "mode": "naive", "seq_per_s": 9e9, "smoke": True},
    ]}  # fmt: skip
    path = tmp_path / "rates.json"
    path.write_text(json.dumps(bench))
    rates = load_rates(path)
    expected = {"naive": 400.0, "optimised": 800.0, "shared": 1600.0, "stacked": 1600.0}
    assert rates["xlm-roberta-large"]["128"] == expected
    assert seq_rate(rates, "xlm-roberta-large", 384, "shared") == 100.0  # measured length used directly
    # an unmeasured length is scaled by FLOPs per sequence: longer sequences are slower than linear
    assert seq_rate(rates, "xlm-roberta-large", 256, "naive") < 400.0 / 2
    # base is not measured here: scaled from large by FLOPs (about 3.5x fewer non-embedding FLOPs)
    assert 3.0 < seq_rate(rates, "xlm-roberta-base", 128, "naive") / 400.0 < 4.0
    hours = plan_totals(plan_recipe(load_recipe("xlmr-large-squad"), rates))
    assert hours["naive"] == pytest.approx(2 * hours["optimised"], rel=1e-6)


def test_stacked_rate_applies_to_phase3_only(tmp_path: Path) -> None:
    bench = {"device": "NVIDIA H200", "created": "x", "results": [
        {"model": "xlm-roberta-large", "seq_len": 128, "mode": "naive", "seq_per_s": 400.0},
        {"model": "xlm-roberta-large", "seq_len": 128, "mode": "optimised", "seq_per_s": 800.0},
        {"model": "xlm-roberta-large", "seq_len": 128, "mode": "shared", "seq_per_s": 1000.0},
        {"model": "xlm-roberta-large", "seq_len": 128, "mode": "stacked", "seq_per_s": 2000.0},
    ]}  # fmt: skip
    path = tmp_path / "rates.json"
    path.write_text(json.dumps(bench))
    rows = plan_recipe(load_recipe("paper-grid"), load_rates(path))
    target = next(r for r in rows if r.phase == "3 target" and r.seq_len == 128)
    inter = next(r for r in rows if r.phase == "2 intermediate" and r.seq_len == 128)
    assert target.hours["stacked"] == pytest.approx(target.hours["shared"] / 2)  # phase-3 cells of a target stack
    assert inter.hours["stacked"] == inter.hours["shared"]  # phase-2 runs do not: they share the GPU instead


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ("model: xlm-roberta-large\ntargets: xnli\n", "t.yaml: targets must be a list of strings, not 'xnli'"),
        ("model: xlm-roberta-large\nseeds: one\ntargets: [xnli]\n", "t.yaml: seeds must be a list of integers"),
        ("model: xlm-roberta-large\nseeds: []\ntargets: [xnli]\n", "t.yaml: seeds is empty"),
        ("model: xlm-roberta-large\ntargets: [xnli]\ntrain: {lr: 2e-5}\n", "t.yaml: train: unknown field 'lr'; known:"),
        ("model: xlm-roberta-large\ntargets: [xnli]\ntrain: {warmup_ratio: fast}\n",
         "t.yaml: train: warmup_ratio must be a number, not 'fast'"),
        ("model: xlm-roberta-large\ntargets: [xnli]\ntask_overrides: {xnli: {batchsize: 8}}\n",
         "t.yaml: task_overrides.xnli: unknown field 'batchsize'"),
        ("model: xlm-roberta-large\ntargets: [xnli]\ntask_overrides: {xnli: {batch_size: 0}}\n",
         "t.yaml: xnli: batch_size must be at least 1, not 0"),
        ("model: xlm-roberta-large\nintermediate: [squad, 3]\ntargets: [xnli]\n",
         "t.yaml: intermediate must be a list of strings or nulls"),
        ("model: xlm-roberta-large\nfoo: [1,\n", "t.yaml: not valid YAML: line 3"),
        ("- model\n", "t.yaml: a recipe is a mapping of fields"),
    ],
)
def test_a_bad_recipe_file_is_one_line_naming_the_file_and_the_field(
    yaml_text: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # before: a YAML syntax error or a list at the top was a traceback; `targets: xnli` was read as the targets
    # 'x', 'n', 'l', 'i'; `seeds: one` planned nothing; a file without `name:` failed with "missing 1 required
    # positional argument: 'name'"
    path = tmp_path / "t.yaml"
    path.write_text(yaml_text)
    assert main(["-q", "replicate", "--config", str(path), "--dry-run", "--rates", str(tmp_path / "none.json")]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err


def test_a_recipe_file_without_a_name_takes_the_file_name(tmp_path: Path) -> None:
    path = tmp_path / "my-grid.yaml"
    path.write_text("model: xlm-roberta-large\nintermediate: [null, squad]\ntargets: [xnli]\n")
    recipe = load_recipe(path)
    assert recipe.name == "my-grid" and recipe.targets == ["xnli"] and recipe.intermediate == [None, "squad"]
