"""The shipped stance adapter over the bundled MiniLM, on real SciFact dev rows it never saw in training."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from claimscope.verify import stance

SCIFACT = Path("/work/shared/benchmarks/scifact")
if not SCIFACT.exists():
    SCIFACT = Path(__file__).resolve().parents[2] / ".data" / "scifact"


@pytest.fixture(scope="module")
def dev_pairs() -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    corpus = {}
    for line in (SCIFACT / "corpus.jsonl").read_text().splitlines():
        d = json.loads(line)
        corpus[str(d["doc_id"])] = d["abstract"]
    rationale, unrelated = [], []
    rows = [json.loads(x) for x in (SCIFACT / "claims_dev.jsonl").read_text().splitlines()]
    other = list(corpus.values())
    for n, row in enumerate(r for r in rows if r["evidence"]):
        doc, sets = next(iter(row["evidence"].items()))
        rationale.append((row["claim"], " ".join(corpus[doc][i] for i in sets[0]["sentences"])))
        unrelated.append((row["claim"], other[(n * 97) % len(other)][0]))
        if len(rationale) == 24:
            break
    return rationale, unrelated


@pytest.mark.skipif(not SCIFACT.exists(), reason="SciFact data not available")
def test_bundled_scorer_separates_evidence_from_unrelated_text(dev_pairs) -> None:
    scorer = stance.load_scorer("bundled", device="cpu")
    assert scorer.info.sha256 == stance.sha256_file(stance.BUNDLED_ADAPTER / "adapter_model.safetensors")
    rationale, unrelated = dev_pairs
    got = scorer.score(rationale + unrelated)
    assert got.shape == (48, 3) and np.allclose(got.sum(1), 1.0)
    rat, unr = got[:24], got[24:]
    # gold rationales are read as support/contradict far more than unrelated first sentences of other abstracts:
    # ranking (AUC over all rationale x unrelated pairs) and level
    r, u = rat[:, :2].sum(1), unr[:, :2].sum(1)
    auc = (r[:, None] > u[None, :]).mean()
    assert auc >= 0.85, auc
    assert r.mean() > 3 * u.mean()
    assert (unr.argmax(1) == 2).mean() >= 0.9
    # batching and length-sorting do not change a pair's score
    single = scorer.score([rationale[5]])
    assert single[0] == pytest.approx(got[5], abs=1e-4)


@pytest.mark.skipif(not SCIFACT.exists(), reason="SciFact data not available")
def test_bundled_at_adapter_dir_loads_that_adapter(dev_pairs, tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "fold"
    copy.mkdir()
    for f in ("adapter_config.json", "adapter_model.safetensors"):
        shutil.copy(stance.BUNDLED_ADAPTER / f, copy / f)
    rationale, _ = dev_pairs
    same = stance.load_scorer(f"bundled@{copy}", device="cpu").score(rationale[:4])
    assert same == pytest.approx(stance.load_scorer("bundled", device="cpu").score(rationale[:4]), abs=1e-6)
    with pytest.raises(stance.StanceModelError, match="adapter_config.json"):
        stance.load_scorer(f"bundled@{tmp_path / 'missing'}")
