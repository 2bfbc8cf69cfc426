"""`replicate --shard K/N` and `replicate-merge`: the split of a grid's cells over processes, and their merge."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from claimscope.cli import main
from claimscope.replicate.config import load_recipe, recipe_from_dict
from claimscope.replicate.pipeline import run_recipe
from claimscope.replicate.plan import load_rates, plan_recipe
from claimscope.replicate.shard import ShardError, ShardSpec, grid_cells, merge_shards, split_cells

from .conftest import tiny_recipe_dict

RATES = {  # the H200 figures plus a stacked rate, so the test does not move with the benchmark's JSON
    "source": "test",
    "xlm-roberta-large": {"128": {"naive": 373.0, "optimised": 720.0, "shared": 1200.0, "stacked": 1500.0}},
}


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 8, 200])
def test_split_is_a_stable_partition(n: int) -> None:
    recipe = load_recipe("paper-grid")
    split = split_cells(recipe, n, RATES)
    assert len(split.cells) == n
    flat = [c for cells in split.cells for c in cells]
    assert sorted(flat, key=repr) == sorted(grid_cells(recipe), key=repr)  # every cell exactly once
    assert len(flat) == 17 * 9
    again = split_cells(load_recipe("paper-grid"), n, dict(RATES))
    assert again.cells == split.cells and again.cost == split.cost
    order = {c: i for i, c in enumerate(grid_cells(recipe))}
    assert all(cells == sorted(cells, key=order.__getitem__) for cells in split.cells)
    assert json.loads(json.dumps(split.to_dict(0)))["assignment"] == [[list(c) for c in s] for s in split.cells]


def test_split_costs_are_the_plans_hours_and_balance() -> None:
    """Each shard's cost is the plan's hours of its phase-3 rows plus the phase-2 rows of every group it touches;
    groups stay whole where that costs nothing, and the busiest shard is near the even share or the largest group."""
    recipe = load_recipe("paper-grid")
    rows = plan_recipe(recipe, RATES)
    total = sum(r.hours["optimised"] for r in rows)
    for n in (2, 4, 8):
        split = split_cells(recipe, n, RATES)
        assert split.basis.startswith("estimated GPU-hours (optimised")
        for cells, cost in zip(split.cells, split.cost, strict=True):
            mine = set(cells) | {c[:3] for c in cells}
            assert cost == pytest.approx(sum(r.hours["optimised"] for r in rows if r.key in mine))
        groups = {g: sum(r.hours["optimised"] for r in rows if r.key[:3] == g) for g in recipe.phase2_groups()}
        heaviest_phase2 = max(sum(r.hours["optimised"] for r in rows if r.key == g) for g in groups)
        assert max(split.cost) <= max(1.05 * total / n, 1.1 * heaviest_phase2)
        if n == 2:  # 16 groups with a phase 2 over 2 shards: none needs to train twice
            owners = [{k for k, cells in enumerate(split.cells) if any(c[:3] == g for c in cells)}
                      for g in groups if g[0] is not None]  # fmt: skip
            assert all(len(o) == 1 for o in owners)
            assert sum(split.cost) == pytest.approx(total) and split.repeated == 0.0
        assert split.repeated == pytest.approx(sum(split.cost) - total)
    # stacking phase 3 changes the estimate the split balances
    recipe.train.stack_cells = 8
    assert split_cells(recipe, 4, RATES).basis.startswith("estimated GPU-hours (stacked")


def test_split_without_estimates_counts_runs(tiny_model: Path, task_data: Path) -> None:
    recipe = recipe_from_dict(tiny_recipe_dict(tiny_model, task_data))  # 3 groups x 5 targets
    split = split_cells(recipe, 3, None)
    assert split.basis == "phase runs (no GPU-hour estimate)"
    # 15 phase-3 runs + 2 phase-2 runs (the baseline has none) = 17 units of 1 over 3 shards
    assert max(split.cost) - min(split.cost) <= 1
    assert sorted((c for cells in split.cells for c in cells), key=repr) == sorted(grid_cells(recipe), key=repr)


@pytest.mark.parametrize("text", ["4/4", "-1/2", "1/0", "a/b", "1", "1/2/3"])
def test_shard_spec_rejects(text: str) -> None:
    with pytest.raises(ShardError):
        ShardSpec.parse(text)


def test_shard_spec() -> None:
    s = ShardSpec.parse("1/4")
    assert (s.index, s.count, s.dirname, str(s)) == (1, 4, "shard-1-of-4", "1/4")


def test_dry_run_prints_the_shards_plan(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    rates = tmp_path / "none.json"  # no file: the figures, as load_rates falls back to
    split = split_cells(load_recipe("paper-grid"), 4, load_rates(rates))
    args = ["-q", "replicate", "--config", "paper-grid", "--dry-run", "--rates", str(rates), "--shard", "2/4"]
    assert main(args) == 0
    out = capsys.readouterr().out
    mine = split.cells[2]
    assert "plan for paper-grid, shard 2/4" in out
    assert len(re.findall(r" -> (\w+) ", out)) == len(mine)
    total = next(x for x in out.splitlines() if x.startswith("TOTAL")).split()
    assert float(total[-3]) == pytest.approx(split.cost[2], abs=0.051)  # the 'optim h' column
    assert re.search(rf"shard 2/4: +{len(mine)} cells .*<- this shard", out)
    assert out.count("shard ") >= 4


def _tiny_config(tiny_model: Path, task_data: Path, tmp_path: Path, **over: object) -> Path:
    d = tiny_recipe_dict(tiny_model, task_data, **over)
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(yaml.safe_dump(d))
    return cfg


def _same_cells(merged: list[dict], whole: list[dict]) -> None:
    assert [(c["intermediate"], c["mlm"], c["seed"], c["target"]) for c in merged] == [
        (c["intermediate"], c["mlm"], c["seed"], c["target"]) for c in whole
    ]
    for m, w in zip(merged, whole, strict=True):
        assert m["scores"] == w["scores"] and m["primary"] == w["primary"] and m["avg"] == w["avg"], m["target"]


def test_two_shards_merged_equal_the_unsharded_run(
    tiny_model: Path, task_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = _tiny_config(tiny_model, task_data, tmp_path, intermediate=[None, "squad"], targets=["pawsx", "tatoeba"])
    assert main(["-q", "replicate", "--config", str(cfg), "--out", str(tmp_path / "whole")]) == 0
    for k in (0, 1):
        args = ["-q", "replicate", "--config", str(cfg), "--out", str(tmp_path / "grid"), "--shard", f"{k}/2"]
        assert main(args) == 0
    shards = [json.loads((tmp_path / "grid" / f"shard-{k}-of-2" / "replication.json").read_text()) for k in (0, 1)]
    assert all(s["cells"] for s in shards)  # both shards had work
    assert shards[0]["shard"]["assignment"] == shards[1]["shard"]["assignment"]
    capsys.readouterr()
    assert main(["-q", "replicate-merge", str(tmp_path / "grid"), "--out", str(tmp_path / "grid")]) == 0
    out = capsys.readouterr().out
    merged = json.loads((tmp_path / "grid" / "replication.json").read_text())
    whole = json.loads((tmp_path / "whole" / "replication.json").read_text())
    _same_cells(merged["cells"], whole["cells"])
    assert merged["recipe"] == whole["recipe"] and "partial" not in merged
    assert [m["shard"] for m in merged["merged_from"]] == ["0/2", "1/2"]
    assert merged["wall_seconds"] == max(s["wall_seconds"] for s in shards)
    assert "intermediate" in out and "4 cells from 2 files" in out
    from claimscope.report_templates.context import ReplicationSummary

    assert len(ReplicationSummary.model_validate(merged).rows) == 4  # the report reads the merged file
    # merging again reads the shards, not the merged file now lying beside them
    assert main(["-q", "replicate-merge", str(tmp_path / "grid"), "--out", str(tmp_path / "again")]) == 0


def test_a_group_split_over_shards_trains_the_same_phase2(tiny_model: Path, task_data: Path, tmp_path: Path) -> None:
    """When a phase-2 group's targets land on two shards, each trains that encoder; with the same seed the cells
    come out as in one run."""
    d = tiny_recipe_dict(tiny_model, task_data, intermediate=[None, "squad"], targets=["pawsx", "tinytag", "tatoeba"])
    recipe = recipe_from_dict(d)
    cells = grid_cells(recipe)
    halves = [[c for c in cells if c[3] == "pawsx"], [c for c in cells if c[3] != "pawsx"]]
    whole = run_recipe(recipe, tmp_path / "whole")
    for k, part in enumerate(halves):
        record = {"index": k, "count": 2, "basis": "test", "assignment": [[list(c) for c in h] for h in halves]}
        run_recipe(recipe_from_dict(d), tmp_path / f"shard-{k}-of-2", cells=part, shard=record)
    merged = merge_shards([tmp_path])
    _same_cells(merged["cells"], json.loads(json.dumps(whole["cells"])))
    for k in (0, 1):
        assert (tmp_path / f"shard-{k}-of-2" / "phase2" / "squad-s1" / "encoder" / "config.json").exists()
    # the stacked path (phase 3 of several groups as one model) runs only the shard's cells too
    d["train"]["stack_cells"] = 2
    stacked = run_recipe(recipe_from_dict(d), tmp_path / "stacked", cells=halves[1])
    assert [(c["intermediate"], c["mlm"], c["seed"], c["target"]) for c in stacked["cells"]] == [
        (None, False, 1, "tinytag"), ("squad", False, 1, "tinytag"), (None, False, 1, "tatoeba"),
        ("squad", False, 1, "tatoeba"),
    ]  # fmt: skip
    assert stacked["cells"][0]["phase3"]["train"]["stacked_with"] == 2


# --- refusals: hand-written shard files (the merge only reads JSON) -------------------------------------------------


def _write_shards(root: Path, n: int = 3, **recipe_over: object) -> tuple[list[Path], list[list[tuple]]]:
    recipe = load_recipe("xlmr-large-squad")
    split = split_cells(recipe, n, RATES)
    files = []
    for k, cells in enumerate(split.cells):
        doc = {
            "kind": "claimscope.replication",
            "version": 1,
            "scale": "full",
            "recipe": {**json.loads(json.dumps(recipe.to_dict())), **recipe_over},
            "cells": [
                {
                    "intermediate": s,
                    "mlm": m,
                    "seed": seed,
                    "target": t,
                    "metric": "f1",
                    "avg": 50.0 + i,
                    "paper": {"avg": 60.0},
                    "scores": {},
                    "primary": {},
                }
                for i, (s, m, seed, t) in enumerate(cells)
            ],
            "shard": split.to_dict(k),
            "wall_seconds": 10.0 * (k + 1),
        }
        path = root / f"shard-{k}-of-{n}" / "replication.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(doc))
        files.append(path)
    return files, split.cells


def test_merge_of_hand_written_shards(tmp_path: Path) -> None:
    files, _ = _write_shards(tmp_path)
    merged = merge_shards([tmp_path])
    recipe = load_recipe("xlmr-large-squad")
    order = grid_cells(recipe)
    assert [(c["intermediate"], c["mlm"], c["seed"], c["target"]) for c in merged["cells"]] == order
    assert merged["wall_seconds"] == 30.0
    assert [m["file"] for m in merged["merged_from"]] == [str(f) for f in files]
    # the same without the claimscope spine: python -m replicate.run merge
    from claimscope.replicate.run import main as run_main

    assert run_main(["merge", *map(str, files), "--out", str(tmp_path / "m")]) == 0
    assert json.loads((tmp_path / "m" / "replication.json").read_text())["cells"] == merged["cells"]
    assert run_main(["merge", str(files[0]), "--out", str(tmp_path / "m2")]) == 2  # missing cells: one clear line


def test_merge_refuses_another_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files, _ = _write_shards(tmp_path)
    doc = json.loads(files[1].read_text())
    doc["recipe"]["train"]["max_steps"] = 5
    doc["recipe"]["model"] = "xlm-roberta-base"
    files[1].write_text(json.dumps(doc))
    with pytest.raises(ShardError, match=re.escape(str(files[1])) + r".*another config.*model, train\.max_steps"):
        merge_shards(files)
    assert main(["-q", "replicate-merge", *map(str, files), "--out", str(tmp_path / "m")]) == 2
    assert str(files[1]) in capsys.readouterr().err
    assert not (tmp_path / "m" / "replication.json").exists()


def test_merge_refuses_overlapping_cells(tmp_path: Path) -> None:
    files, cells = _write_shards(tmp_path)
    a, b = json.loads(files[0].read_text()), json.loads(files[1].read_text())
    b["cells"].append(a["cells"][0])
    files[1].write_text(json.dumps(b))
    s, m, seed, t = cells[0][0]
    with pytest.raises(ShardError, match=rf"{re.escape(str(files[1]))}.*{s or 'baseline'} s{seed} -> {t} is also in "
                                         rf"{re.escape(str(files[0]))}"):  # fmt: skip
        merge_shards(files)
    with pytest.raises(ShardError, match="overlapping"):  # the same shard twice
        merge_shards([files[0], files[0]])


def test_merge_refuses_missing_cells_unless_partial(tmp_path: Path) -> None:
    files, cells = _write_shards(tmp_path)
    doc = json.loads(files[2].read_text())
    lost = doc["cells"].pop()
    files[2].write_text(json.dumps(doc))
    name = f"{lost['intermediate'] or 'baseline'} s1 -> {lost['target']}"
    with pytest.raises(ShardError, match=rf"1 of 18 cells missing \(shard 2/3: {re.escape(str(files[2]))} lacks "
                                         rf"{re.escape(name)}\); pass --allow-partial"):  # fmt: skip
        merge_shards(files)
    with pytest.raises(ShardError, match=rf"{len(cells[1]) + 1} of 18 cells missing \(shard 1/3: no file given, so "):
        merge_shards([files[0], files[2]])
    partial = merge_shards(files, allow_partial=True)
    assert partial["partial"] is True
    assert partial["missing_cells"] == [[lost["intermediate"], lost["mlm"], lost["seed"], lost["target"]]]
    assert len(partial["cells"]) == 17


def test_merge_refuses_different_splits(tmp_path: Path) -> None:
    three, _ = _write_shards(tmp_path / "a", 3)
    two, _ = _write_shards(tmp_path / "b", 2)
    with pytest.raises(ShardError, match=rf"{re.escape(str(two[1]))}: split 1/2 differs"):
        merge_shards([three[0], two[1]])


def test_merge_refuses_what_is_not_a_replication(tmp_path: Path) -> None:
    bad = tmp_path / "x.json"
    bad.write_text('{"kind": "something else"}')
    with pytest.raises(ShardError, match=re.escape(str(bad))):
        merge_shards([bad])
    with pytest.raises(ShardError, match="no replication.json"):
        merge_shards([tmp_path / "empty"])
