"""SciFact readers, writer and the official metric rules, on hand-made and real dev rows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from claimscope.verify import scifact as sf

SCIFACT = Path("/work/shared/benchmarks/scifact")
if not SCIFACT.exists():
    SCIFACT = Path(__file__).resolve().parents[2] / ".data" / "scifact"

GOLD = [
    {"id": 1, "claim": "c1", "cited_doc_ids": [11, 15], "evidence": {
        "11": [{"sentences": [0, 1], "label": "SUPPORT"}, {"sentences": [11], "label": "SUPPORT"}],
        "15": [{"sentences": [4], "label": "SUPPORT"}]}},
    {"id": 2, "claim": "c2", "cited_doc_ids": [30], "evidence": {}},
    {"id": 3, "claim": "c3", "cited_doc_ids": [20], "evidence": {"20": [{"sentences": [2], "label": "CONTRADICT"}]}},
    {"id": 4, "claim": "c4", "cited_doc_ids": [40],
     "evidence": {"40": [{"sentences": [1, 2, 3, 4], "label": "SUPPORT"}]}},
]
PRED = [
    {"id": 1, "evidence": {"11": {"label": "SUPPORT", "sentences": [0, 2, 3, 1, 11]},
                           "16": {"label": "SUPPORT", "sentences": [3]}}},
    {"id": 2, "evidence": {"30": {"label": "CONTRADICT", "sentences": [1]}}},
    {"id": 3, "evidence": {"20": {"label": "SUPPORT", "sentences": [2]}}},
    {"id": 4, "evidence": {"40": {"label": "SUPPORT", "sentences": [1, 2, 3, 4]}}},
]


def test_hand_computed_metrics() -> None:
    m = sf.scifact_metrics(GOLD, PRED)
    # abstracts: relevant 4 (11, 15, 20, 40), retrieved 5, label right for 11 and 40
    assert m["abstract_label_only_precision"] == pytest.approx(2 / 5)
    assert m["abstract_label_only_recall"] == pytest.approx(2 / 4)
    assert m["abstract_label_only_f1"] == pytest.approx(4 / 9)
    # rationalized: doc 11's first 3 sentences {0, 2, 3} hold no full rationale; doc 40's rationale has 4 sentences,
    # longer than 3, so 4 predicted sentences are kept and it counts
    assert m["abstract_rationalized_f1"] == pytest.approx(2 / 9)
    # sentences: relevant 2+1+1+1+4 = 9, retrieved 5+1+1+1+4 = 12; correct: 0, 1, 11 (doc 11), 2 (doc 20), 4 in doc 40
    assert m["count_sentence_selection"] == 8 and m["count_sentence_label"] == 7
    assert m["sentence_selection_f1"] == pytest.approx(32 / 42)
    assert m["sentence_label_f1"] == pytest.approx(2 / 3)


def test_partial_rationale_gets_no_sentence_credit() -> None:
    pred = [{"id": 1, "evidence": {"11": {"label": "SUPPORT", "sentences": [0]}}}]
    m = sf.scifact_metrics(GOLD[:1], pred)
    assert m["count_sentence_selection"] == 0  # 0 alone: its rationale {0, 1} is incomplete
    assert m["abstract_label_only_f1"] == pytest.approx(2 * 1 * 0.5 / 1.5)


def test_bad_predictions_are_rejected() -> None:
    with pytest.raises(sf.BadSciFactFile, match="NOT_ENOUGH_INFO"):
        sf.scifact_metrics(GOLD, [{"id": 1, "evidence": {"11": {"label": "NOT_ENOUGH_INFO", "sentences": []}}}])
    with pytest.raises(sf.BadSciFactFile, match="not in the gold"):
        sf.scifact_metrics(GOLD, [{"id": 99, "evidence": {}}])


def test_retrieval_recall_hand_computed() -> None:
    ranked = {1: [15, 7, 8, 11], 2: [1], 3: [5, 6, 20], 4: [40]}
    m = sf.retrieval_recall(GOLD, ranked, ks=(1, 3, 4))
    # gold abstracts over claims with evidence: 11, 15 | 20 | 40 = 4
    assert m["retrieval_recall@1"] == pytest.approx(2 / 4)  # 15, 40
    assert m["retrieval_recall@3"] == pytest.approx(3 / 4)  # + 20
    assert m["retrieval_recall@4"] == pytest.approx(1.0)
    assert m["retrieval_claim_recall@3"] == pytest.approx(2 / 3)
    assert m["retrieval_claim_any@1"] == pytest.approx(2 / 3)  # claim 1 (via 15) and claim 4


def test_prediction_writer_roundtrip(tmp_path: Path) -> None:
    preds = [sf.ClaimPrediction(id=1, evidence={"11": sf.AbstractPrediction(label="SUPPORT", sentences=[0, 1],
                                                                             confidence=0.8)}),
             sf.ClaimPrediction(id=2)]
    out = tmp_path / "preds.jsonl"
    sf.write_predictions(out, preds)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows[0] == {"id": 1, "evidence": {"11": {"label": "SUPPORT", "sentences": [0, 1], "confidence": 0.8}}}
    assert rows[1] == {"id": 2, "evidence": {}}
    assert sf.scifact_metrics(GOLD[:2], sf.read_predictions(out))["abstract_label_only_precision"] == 1.0


@pytest.mark.skipif(not SCIFACT.exists(), reason="SciFact data not available")
def test_real_dev_rows() -> None:
    corpus = sf.read_corpus(SCIFACT / "corpus.jsonl")
    gold = sf.read_jsonl_rows(SCIFACT / "claims_dev.jsonl")
    claims = sf.read_claims(SCIFACT / "claims_dev.jsonl")
    assert len(claims) == len(gold) == 300
    assert {c.gold_label for c in claims} == {"SUPPORTED", "CONTRADICTED", "NOT_ENOUGH_INFO"}
    assert sf.cited_doc_ids(claims[0]) == gold[0]["cited_doc_ids"]
    # passages: exact spans into the single-space-joined abstract, sentence index recoverable
    doc = corpus[int(next(iter(g for g in gold if g["evidence"]))["cited_doc_ids"][0])]
    text = sf.abstract_text(doc)
    for i, p in enumerate(sf.doc_passages(doc)):
        assert text[p.start : p.end] == p.text == doc["abstract"][i]
        assert sf.sentence_index(p) == i and sf.doc_id_of(p) == doc["doc_id"]
    # the gold itself, written as a prediction, scores 1.0 everywhere
    perfect = [{"id": g["id"], "evidence": {d: {"label": s[0]["label"],
                                                "sentences": sorted({i for r in s for i in r["sentences"]})}
                                            for d, s in g["evidence"].items()}} for g in gold]
    m = sf.scifact_metrics(gold, perfect)
    for key in ("abstract_label_only_f1", "abstract_rationalized_f1", "sentence_selection_f1", "sentence_label_f1"):
        assert m[key] == pytest.approx(1.0)
    # always-SUPPORT on the first cited abstract, against counts done independently here
    floor = sf.scifact_metrics(gold, sf.always_support_predictions(gold, {g["id"]: g["cited_doc_ids"] for g in gold}))
    hits = sum(1 for g in gold if g["evidence"].get(str(g["cited_doc_ids"][0]), [{"label": ""}])[0]["label"]
               == "SUPPORT")
    n_gold = sum(len(g["evidence"]) for g in gold)
    assert floor["abstract_label_only_precision"] == pytest.approx(hits / len(gold))
    assert floor["abstract_label_only_recall"] == pytest.approx(hits / n_gold)
