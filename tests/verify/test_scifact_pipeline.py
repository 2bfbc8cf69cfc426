"""The SciFact abstract decision: features, the untrained and fitted rules, rationale choice, rule/scorer pairing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from claimscope.types import ModelInfo
from claimscope.verify import scifact_pipeline as sp

SENTS = np.array([[0.05, 0.05, 0.90], [0.70, 0.10, 0.20], [0.20, 0.10, 0.70], [0.55, 0.05, 0.40]])


def test_doc_features_by_hand() -> None:
    f = sp.doc_features(SENTS, rank=2)
    # max P(s), max P(c), (s - c) at the most stance-bearing sentence, mean of the two largest s + c, rank one-hot
    assert f.tolist() == pytest.approx([0.70, 0.10, 0.60, (0.80 + 0.60) / 2, 0.0, 1.0, 0.0])
    assert sp.doc_features(SENTS, rank=7)[4:].tolist() == [0.0, 0.0, 0.0]


def test_default_rule_and_rationale() -> None:
    rule = sp.AbstractRule.default()
    dd = sp.DocDecision(5, 1, rule.probs(sp.doc_features(SENTS, 1))[0], SENTS)
    assert dd.label == "SUPPORT" and dd.probs.sum() == pytest.approx(1.0)
    assert dd.rationale() == [1, 3]  # the sentences read as support, strongest first
    flat = np.tile([0.1, 0.1, 0.8], (3, 1))
    assert sp.DocDecision(6, 1, rule.probs(sp.doc_features(flat, 1))[0], flat).label == "NEI"


def test_fit_rule_learns_separable_labels(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    feats, labels = [], []
    for _ in range(300):
        y = int(rng.integers(3))
        s = rng.uniform(0.6, 1.0) if y == 0 else rng.uniform(0, 0.3)
        c = rng.uniform(0.6, 1.0) if y == 1 else rng.uniform(0, 0.3)
        probs = np.array([[s, c, max(0.0, 1 - s - c)], [0.1, 0.1, 0.8]])
        feats.append(sp.doc_features(probs, 1))
        labels.append(y)
    rule = sp.fit_rule(np.asarray(feats), labels)
    pred = rule.probs(np.asarray(feats)).argmax(1)
    assert (pred == np.asarray(labels)).mean() > 0.95
    path = tmp_path / "rule.json"
    rule.meta |= {"stance_model": "m", "stance_sha256": "abc"}
    rule.save(path)

    class Scorer:
        info = ModelInfo(name="m", sha256="abc", role="stance")

    assert sp.AbstractRule.for_scorer(Scorer(), path).coef == rule.coef
    Scorer.info = ModelInfo(name="m", sha256="other", role="stance")
    assert sp.AbstractRule.for_scorer(Scorer(), path).meta == {"fitted": False}
