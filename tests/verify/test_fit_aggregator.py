"""fit_aggregator's inputs: the out-of-fold adapter mapping, and claim features from the SciFact scores."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from claimscope.errors import ClaimscopeError
from claimscope.types import Evidence
from claimscope.verify import fit_aggregator as fa
from claimscope.verify import scifact_pipeline as sp
from claimscope.verify.aggregate import ScoredHit, hit_features


def test_fold_file_maps_each_claim_to_one_adapter(tmp_path: Path) -> None:
    good = tmp_path / "folds.json"
    good.write_text(json.dumps({"folds/a": [1, 2], "folds/b": ["3"]}))
    assert fa.read_folds(good) == {"folds/a": {1, 2}, "folds/b": {3}}
    twice = tmp_path / "twice.json"
    twice.write_text(json.dumps({"folds/a": [1, 2], "folds/b": [2]}))
    with pytest.raises(ClaimscopeError, match="more than one fold"):
        fa.read_folds(twice)
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    with pytest.raises(ClaimscopeError, match="not a fold file"):
        fa.read_folds(bad)


def test_claim_features_pool_the_cited_abstracts_only() -> None:
    def hit(doc: int, p_s: float) -> ScoredHit:
        ev = Evidence(passage_id=f"{doc}", quote="q", paper=f"scifact:{doc}", page=1, section="s0", p_support=p_s,
                      p_contradict=0.0, p_neutral=1 - p_s)
        return ScoredHit(evidence=ev, relevance=0.9, text="q", coverage=0.5)

    scores = {7: sp.ClaimScores(7, retrieved=[1, 2], cited=[2], hits={1: [hit(1, 0.9)], 2: [hit(2, 0.2)]})}
    x = fa.claim_features(scores, [7])
    assert np.allclose(x[0], hit_features([hit(2, 0.2)]))  # the retrieved-only abstract 1 does not count
