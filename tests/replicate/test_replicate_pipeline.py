"""All three phases end to end on a tiny random XLM-R, one task of each kind, generated examples."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from claimscope.replicate.config import recipe_from_dict
from claimscope.replicate.pipeline import run_recipe

from .conftest import tiny_recipe_dict


def test_three_phases_every_task_kind(tiny_model: Path, task_data: Path, tmp_path: Path) -> None:
    recipe = recipe_from_dict(tiny_recipe_dict(tiny_model, task_data))
    doc = run_recipe(recipe, tmp_path)
    on_disk = json.loads((tmp_path / "replication.json").read_text())
    assert on_disk["cells"] == json.loads(json.dumps(doc["cells"]))
    assert on_disk["scale"] == "miniature"
    # 3 phase-2 settings (baseline, multiple choice, QA) x 5 targets (cls, QA, tagging, 2 retrieval)
    assert len(doc["cells"]) == 15
    cells = {(c["intermediate"], c["target"]): c for c in doc["cells"]}
    for (_, target), c in cells.items():
        assert c["primary"], target
        for v in c["primary"].values():
            assert 0.0 <= v <= 100.0
    cls = cells[(None, "pawsx")]
    assert set(cls["primary"]) == {"en", "xx"}
    assert cls["gap"] == cls["en"] - cls["non_en_avg"]
    assert set(cells[("squad", "tinyqa")]["scores"]["en"]) == {"exact_match", "f1"}
    assert cells[(None, "bucc")]["scores"]["xx"]["threshold_tuned_on_test"] == 1.0
    assert cells[(None, "tatoeba")]["en"] is None  # retrieval: only non-English languages
    # model selection ran on English dev each epoch
    assert cls["phase3"]["train"]["dev_scores"]
    # phase 2 trained and saved an encoder that differs from the start and is what phase 3 started from
    enc = tmp_path / "phase2" / "squad-s1" / "encoder"
    assert (enc / "config.json").exists() and (enc / "tokenizer.json").exists()
    from transformers import AutoModel

    before = AutoModel.from_pretrained(tiny_model).state_dict()
    after = AutoModel.from_pretrained(enc).state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before if k in after)
    assert doc["phase2"]["squad-s1"]["steps"] == 3


def test_rerun_resumes_and_reuses_phase2(tiny_model: Path, task_data: Path, tmp_path: Path) -> None:
    d = tiny_recipe_dict(tiny_model, task_data, intermediate=["squad"], targets=["tatoeba"])
    first = run_recipe(recipe_from_dict(d), tmp_path)
    again = run_recipe(recipe_from_dict(d), tmp_path)  # everything done: cells come back from replication.json
    assert again["cells"] == json.loads(json.dumps(first["cells"]))
    assert again["phase2"]["squad-s1"] == json.loads(json.dumps(first["phase2"]["squad-s1"]))
    d["targets"] = ["tatoeba", "bucc"]  # another recipe: no resume, but the phase-2 encoder on disk is reused
    third = run_recipe(recipe_from_dict(d), tmp_path)
    assert "reused" in third["phase2"]["squad-s1"]
    assert third["cells"][0]["primary"] == first["cells"][0]["primary"]
    assert [c["target"] for c in third["cells"]] == ["tatoeba", "bucc"]


def test_mlm_cotraining_phase(tiny_model: Path, task_data: Path, tmp_path: Path) -> None:
    d = tiny_recipe_dict(tiny_model, task_data, intermediate=["commonsenseqa"], mlm_cotrain=[True], targets=["tatoeba"])
    doc = run_recipe(recipe_from_dict(d), tmp_path)
    p2 = doc["phase2"]["commonsenseqa+mlm-s1"]
    assert p2["tasks"] == ["commonsenseqa", "mlm"]
    assert p2["lr"] == 5e-6


def test_stacked_phase3_gives_the_cells_of_separate_runs(tiny_model: Path, task_data: Path, tmp_path: Path) -> None:
    """stack_cells: the three settings' phase 3 of each trained target run as one batched model; with dropout off
    (so both runs draw no random numbers) every cell's scores equal the one-cell-at-a-time run's."""
    import shutil

    still = tmp_path / "model"
    shutil.copytree(tiny_model, still)
    cfg = json.loads((still / "config.json").read_text())
    cfg["hidden_dropout_prob"] = cfg["attention_probs_dropout_prob"] = 0.0
    (still / "config.json").write_text(json.dumps(cfg))
    d = tiny_recipe_dict(still, task_data, targets=["pawsx", "tinyqa", "tatoeba"])
    one = run_recipe(recipe_from_dict(d), tmp_path / "one")
    d["train"]["stack_cells"] = 3
    stacked = run_recipe(recipe_from_dict(d), tmp_path / "stacked")
    assert len(stacked["cells"]) == len(one["cells"]) == 9
    by_key = {(c["intermediate"], c["target"]): c for c in one["cells"]}
    for c in stacked["cells"]:
        alone = by_key[(c["intermediate"], c["target"])]
        if c["target"] != "tatoeba":
            assert c["phase3"]["train"]["stacked_with"] == 3
            assert c["phase3"]["train"]["steps"] == alone["phase3"]["train"]["steps"] == 3
        for lang, scores in alone["scores"].items():
            for metric, v in scores.items():
                assert abs(c["scores"][lang][metric] - v) < 1e-3, (c["intermediate"], c["target"], lang, metric)
