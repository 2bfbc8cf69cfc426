"""benchmarks/docrank_rerank.py's pieces: the re-ranking moves only the top D abstracts and by the signal of the
first m sentences; the stance signal of a top abstract is 1 - P(NEUTRAL) of the sentences the verifier scores for it
(real SciFact abstracts, the lexical stance scorer)."""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np
import pytest

from claimscope.settings import VerifySettings
from claimscope.verify import scifact as sf
from claimscope.verify import scifact_pipeline as sp

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "corpus"


@pytest.fixture(scope="module")
def bench(benchmark_module):  # type: ignore[no-untyped-def]
    return benchmark_module("docrank_rerank")


def test_rerank_reorders_only_the_top_depth_by_the_first_m_sentences(bench) -> None:  # type: ignore[no-untyped-def]
    fused = np.array([[3.0, 2.9, 2.8, 2.7, 1.0]])
    rel = np.array([[[0.1, 0.1], [0.2, 0.9], [0.95, np.nan], [0.99, 0.99], [1.0, 1.0]]])
    assert bench.rerank(fused, rel, 3, 1, "prob", 0.0)[0].tolist() == [0, 1, 2, 3, 4]  # no weight: fused order
    # large weight, one sentence: the top 3 by their first sentence (0.95 > 0.2 > 0.1); 3 and 4 stay below
    assert bench.rerank(fused, rel, 3, 1, "prob", 100.0)[0].tolist() == [2, 1, 0, 3, 4]
    # two sentences: abstract 1's second sentence (0.9) counts; abstract 2 has one sentence (NaN ignored)
    assert bench.rerank(fused, rel, 3, 2, "prob", 100.0)[0].tolist() == [2, 1, 0, 3, 4]
    assert bench.rerank(fused, rel, 2, 2, "logit", 100.0)[0].tolist() == [1, 0, 2, 3, 4]
    # a small weight only breaks near ties: 2.9 + 0.2w vs 3.0 + 0.1w swaps at w > 1
    assert bench.rerank(fused, rel, 2, 1, "prob", 0.5)[0].tolist() == [0, 1, 2, 3, 4]
    assert bench.rerank(fused, rel, 2, 1, "prob", 2.0)[0].tolist() == [1, 0, 2, 3, 4]


def test_found_at_counts_gold_in_the_reordered_top_k_then_the_fused_tail(bench) -> None:  # type: ignore[no-untyped-def]
    cand = np.array([[7, 8, 9], [1, 2, 3]])
    tail = np.array([[7, 8, 9, 4, 5, 6, 10, 11, 12, 13, 14], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]])
    order = np.array([[2, 0, 1], [0, 1, 2]])
    got = bench.found_at(order, cand, [[9, 14], []], tail)
    # claim 0: 9 moved to rank 1; 14 is at rank 11 of the fused order (past the top 10); claim 1 has no evidence
    assert got.tolist() == [[1, 1, 1], [0, 0, 0]]


def test_pair_accuracy_counts_gold_above_other_candidates(bench) -> None:  # type: ignore[no-untyped-def]
    cand = np.array([[5, 6, 7], [5, 6, 7], [5, 6, 7]])
    score = np.array([[0.9, 0.1, 0.5], [0.2, 0.2, 0.3], [0.1, 0.2, 0.3]])
    # claim 0: gold 5 above both others (2 of 2); claim 1: gold 5 ties 6, below 7 (0.5 of 2); claim 2: all gold, skipped
    assert bench.pair_accuracy(score, cand, [[5], [5], [5, 6, 7]], 3) == pytest.approx(2.5 / 4)


def _rows(name: str) -> list[dict]:
    return [json.loads(line) for line in (FIXTURES / name).read_text().splitlines() if line.strip()]


def _hashed_embeddings(texts, *args, **kwargs) -> np.ndarray:  # type: ignore[no-untyped-def]
    """Bag-of-words vectors (no model to load): this test is about which sentences are scored, not about MiniLM."""
    out = np.zeros((len(texts), 384), dtype=np.float32)
    for i, t in enumerate(texts):
        for w in t.lower().split():
            out[i, zlib.crc32(w.encode()) % 384] += 1.0
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)


def test_stance_of_top_is_one_minus_neutral_of_the_verifiers_best_sentences(bench, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from claimscope.verify import index as index_mod

    monkeypatch.setattr(index_mod, "embed_texts", _hashed_embeddings)
    corpus = {int(d["doc_id"]): d for d in _rows("scifact_corpus_sample.jsonl")[:12]}
    claims = [r["claim"] for r in _rows("scifact_claims_sample.jsonl")[:3]]
    index = sp.scifact_index(corpus, model="bundled:all-MiniLM-L6-v2")
    verifier = sp.scifact_verifier(index, corpus, VerifySettings(stance_model="lexical", top_k=8))
    docs = np.array([list(corpus)[:4], list(corpus)[4:8], list(corpus)[8:12]])
    short = min(corpus, key=lambda d: len(corpus[d]["abstract"]))
    docs[0, 0] = short
    m = len(corpus[short]["abstract"]) + 1  # one more sentence than the shortest abstract holds
    got = bench.stance_of_top(verifier, claims, docs, m)
    assert got.shape == (3, 4, m) and verifier.settings.top_k == 8  # the verifier's setting is put back
    assert np.isnan(got[0, 0, -1]) and not np.isnan(got[0, 0, :-1]).any()
    for i, claim in enumerate(claims):
        for j, d in enumerate(docs[i]):
            hits = index.search(claim, m, allowed={sf.paper_key(int(d))})  # the verifier's within-abstract order
            want = 1 - verifier.scorer.score([(claim, h.passage.text) for h in hits])[:, 2]
            np.testing.assert_allclose(got[i, j, : len(hits)], want, atol=1e-4)
    assert np.nanmax(got) > 0  # the lexical scorer finds some overlap, so the check above is not all zeros
