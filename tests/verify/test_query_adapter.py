"""The query-side adapter of the open-claim document ranking: the shipped one on real SciFact train rows, the switch,
and the training command on a tiny subset of SciFact train."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from claimscope.verify import scifact as sf
from claimscope.verify.query_adapter import DEFAULT_DIR, QueryAdapter, adapter_for

SCIFACT = Path("/work/shared/benchmarks/scifact")
if not SCIFACT.exists():
    SCIFACT = Path(__file__).resolve().parents[2] / ".data" / "scifact"
needs_scifact = pytest.mark.skipif(not SCIFACT.exists(), reason="SciFact data not available")

# A SciFact **train** claim and a small real slice of the corpus: its gold abstract and the abstracts that outrank it
# in the full 5k-abstract ranking with base claim vectors, plus a few others (ids fixed offline).
CLAIM_ID = 413  # "Female carriers of the Apolipoprotein E4 (APOE4) allele have decreased risk for dementia."
GOLD = 6309659  # base vectors: 6th in the full corpus; adapted: 1st
OTHERS = [20937018, 4709641, 12443371, 18852643, 51386222, 30351165, 37205759]


def _train_row(claim_id: int) -> dict:
    rows = sf.read_jsonl_rows(SCIFACT / "claims_train.jsonl")
    return next(r for r in rows if int(r["id"]) == claim_id)


def test_shipped_adapter_is_small_and_for_the_bundled_minilm_only() -> None:
    adapter = adapter_for("bundled:all-MiniLM-L6-v2")
    assert adapter is not None and adapter.base_model == "bundled:all-MiniLM-L6-v2"
    assert sum(f.stat().st_size for f in DEFAULT_DIR.iterdir()) < 3_000_000
    assert adapter_for("bundled:all-MiniLM-L6-v2", False) is None
    assert adapter_for("sentence-transformers/all-mpnet-base-v2") is None  # another embedder ignores it
    info = json.loads((DEFAULT_DIR / "training.json").read_text())
    assert info["adapter_sha256"] == adapter.sha256
    assert set(adapter.doc_weights) == {"w_bm25", "w_max", "w_top2", "w_title"}


@needs_scifact
def test_shipped_adapter_moves_claim_vectors_and_ranks_the_gold_abstract_higher() -> None:
    from claimscope.verify.index import EvidenceIndex
    from claimscope.verify.scifact_pipeline import scifact_index

    corpus = sf.read_corpus(SCIFACT / "corpus.jsonl")
    row = _train_row(CLAIM_ID)
    assert GOLD in {int(d) for d in row["evidence"]}
    index = scifact_index({d: corpus[d] for d in [GOLD, *OTHERS]})
    assert isinstance(index, EvidenceIndex)
    adapter = index.adapter()
    assert adapter is not None
    q = index.embed_queries([row["claim"]])
    moved = adapter.apply(q)
    assert np.allclose(np.linalg.norm(moved, axis=1), 1.0, atol=1e-5)
    cosine = float((q @ moved.T)[0, 0])
    assert 0.3 < cosine < 0.995  # changed, yet near the base vector

    def rank_of_gold(use: bool) -> int:
        hits = index.search_docs([row["claim"]], len(OTHERS) + 1, adapter=use)[0]
        return [h.unit.paper for h in hits].index(sf.paper_key(GOLD)) + 1

    base, adapted = rank_of_gold(False), rank_of_gold(True)
    assert adapted == 1 < base, (base, adapted)  # 3rd without the adapter in this slice
    index.query_adapter = False  # the switch (VerifySettings.query_adapter) turns it off for the default search
    assert index.adapter() is None and rank_of_gold(None) == base  # type: ignore[arg-type]


def test_adapter_round_trips_and_identity_changes_nothing(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    q = rng.normal(size=(3, 8)).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    identity = QueryAdapter(np.zeros((8, 8), np.float32), np.zeros(8, np.float32), "bundled:all-MiniLM-L6-v2", "",
                            {"w_bm25": 1.0, "w_max": 1.5, "w_top2": 0.5, "w_title": 0.5})
    assert np.allclose(identity.apply(q), q, atol=1e-6)
    moved = QueryAdapter(rng.normal(size=(8, 8)).astype(np.float32) * 0.1, rng.normal(size=8).astype(np.float32) * 0.1,
                         "bundled:all-MiniLM-L6-v2", "", identity.doc_weights)
    sha = moved.save(tmp_path / "a")
    again = QueryAdapter.load(tmp_path / "a")
    assert again.sha256 == sha and np.allclose(again.apply(q), moved.apply(q)) and not np.allclose(again.apply(q), q)
    assert adapter_for("bundled:all-MiniLM-L6-v2", tmp_path / "a").sha256 == sha  # type: ignore[union-attr]


@needs_scifact
@pytest.mark.slow
def test_training_command_on_a_tiny_train_subset(tmp_path: Path) -> None:
    from claimscope.verify import train_query_adapter as tq

    out = tmp_path / "adapter"
    assert tq.main(["--scifact", str(SCIFACT), "--out", str(out), "--index-dir", str(tmp_path / "index"),
                    "--max-claims", "60", "--max-docs", "150", "--folds", "2", "--epochs", "3", "--lr", "3e-3"]) == 0
    info = json.loads((out / "training.json").read_text())
    assert info["data"]["claims"] == 60 and info["data"]["abstracts"] <= 150 and info["folds"] == 2
    assert info["data"]["source"].startswith("SciFact claims_train.jsonl")
    adapter = QueryAdapter.load(out)
    assert adapter.sha256 == info["adapter_sha256"] and np.abs(adapter.delta).max() > 0
    rec = info["train_recall_out_of_fold"]
    assert 0.0 < rec["base_vectors_shipped_weights"]["recall@10"] <= 1.0
    # the fit lowers its own training loss: on the claims it trained on, the gold abstracts rank no worse
    data = tq.load_data(SCIFACT, tmp_path / "index", max_claims=60, max_docs=150)
    before = tq.recall(data, data.q_base, tq.DocParams())
    after = tq.recall(data, adapter.apply(data.q_base), tq.DocParams())
    assert after["recall@1"] >= before["recall@1"]
