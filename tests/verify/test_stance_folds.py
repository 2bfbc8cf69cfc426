"""Installing a cross-fitted stance run: the final adapter, the pooled out-of-fold predictions, FOLDS.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from claimscope.errors import ClaimscopeError
from claimscope.verify.stance_folds import install


def _run_folder(root: Path) -> Path:
    runs = root / "runs"
    runs.mkdir()
    (runs / "adapter_config.json").write_text('{"r": 16}')
    (runs / "adapter_model.safetensors").write_bytes(b"final weights")
    (runs / "training.json").write_text(json.dumps({"adapter_sha256": "abc", "hyper": {"fold_epochs": 4}}))
    for k, claims in ((0, [3, 8]), (1, [5])):
        (runs / f"fold-{k}").mkdir()
        (runs / f"fold-{k}" / "fold.json").write_text(json.dumps({"fold": k, "steps": 7, "claims": claims}))
        rows = [{"claim_id": c, "fold": k, "probs": [0.2, 0.1, 0.7]} for c in claims]
        (runs / f"oof-fold-{k}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return runs


def test_install_pools_the_folds_and_writes_folds_json(tmp_path: Path) -> None:
    runs = _run_folder(tmp_path)
    summary = install(runs, tmp_path / "model", tmp_path / "folds.json")
    assert summary == {"adapter_sha256": "abc", "folds": 2, "claims": 3, "oof_pairs": 3}
    assert (tmp_path / "model" / "adapter_model.safetensors").read_bytes() == b"final weights"
    oof = [json.loads(line) for line in (tmp_path / "model" / "oof.jsonl").read_text().splitlines()]
    assert [(r["claim_id"], r["fold"]) for r in oof] == [(3, 0), (8, 0), (5, 1)]
    record = json.loads((tmp_path / "model" / "training.json").read_text())
    assert record["hyper"] == {"fold_epochs": 4} and [f["n_claims"] for f in record["folds"]] == [2, 1]
    folds = json.loads((tmp_path / "folds.json").read_text())
    assert folds == {str((runs / "fold-0").resolve()): [3, 8], str((runs / "fold-1").resolve()): [5]}


def test_a_fold_without_predictions_is_named(tmp_path: Path) -> None:
    runs = _run_folder(tmp_path)
    (runs / "oof-fold-1.jsonl").unlink()
    with pytest.raises(ClaimscopeError, match="oof-fold-1.jsonl"):
        install(runs, tmp_path / "model", tmp_path / "folds.json")
    assert not (tmp_path / "model" / "oof.jsonl").exists()  # nothing half-installed


def test_matching_temperature_recovers_a_sharpened_copy_of_the_folds() -> None:
    import numpy as np

    from claimscope.verify.stance_folds import matching_temperature, mean_entropy, tempered

    logits = np.random.default_rng(0).normal(size=(200, 3))
    fold = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    sharper = tempered(fold, 1 / 1.5)  # the final adapter: the folds' logits x 1.5
    assert mean_entropy(sharper) < mean_entropy(fold)
    assert abs(matching_temperature(sharper, [fold, fold]) - 1.5) < 1e-6
    # two folds on either side: the target is their mean entropy
    t = matching_temperature(fold, [tempered(fold, 0.8), tempered(fold, 1.25)])
    target = (mean_entropy(tempered(fold, 0.8)) + mean_entropy(tempered(fold, 1.25))) / 2
    assert abs(mean_entropy(tempered(fold, t)) - target) < 1e-9 and 0.8 < t < 1.25


def test_title_rows_leave_out_cited_and_short_titles() -> None:
    from claimscope.verify.stance_folds import title_rows

    corpus = {d: {"title": ("word " * (3 if d % 4 == 0 else 7)).strip()} for d in range(40)}
    rows = title_rows(corpus, cited={1, 2, 3}, n=100)
    ids = {r["id"] for r in rows}
    assert ids == {d for d in range(40) if d % 4 and d not in {1, 2, 3}}
    assert all(r["cited_doc_ids"] == [r["id"]] and r["claim"] == corpus[r["id"]]["title"] for r in rows)
    assert title_rows(corpus, set(), 5) == title_rows(corpus, set(), 5) and len(title_rows(corpus, set(), 5)) == 5
