"""The SciFact path is the product's own: per-abstract probabilities are the aggregator's per-paper verdict that
`claimscope run` gives a claim citing that abstract; the SciFact decision rules and their fit on train."""

from __future__ import annotations

import numpy as np
import pytest

from claimscope.settings import VerifySettings
from claimscope.types import Claim, Evidence, PaperRef
from claimscope.verify import scifact as sf
from claimscope.verify import scifact_pipeline as sp
from claimscope.verify.aggregate import Aggregator, ScoredHit

CORPUS = {
    11: {"doc_id": 11, "title": "Aspirin and stroke", "structured": False,
         "abstract": ["We studied 900 adults for ten years.", "Aspirin reduces the risk of stroke in adults."]},
    12: {"doc_id": 12, "title": "Rainfall in Peru", "structured": False,
         "abstract": ["Rainfall in Peru was measured.", "It rained a lot in the highlands."]},
    13: {"doc_id": 13, "title": "Statins", "structured": False,
         "abstract": ["Statins lower cholesterol levels.", "Side effects were rare."]},
}
CLAIMS = [
    {"id": 1, "claim": "Aspirin reduces stroke risk in adults.", "cited_doc_ids": [11],
     "evidence": {"11": [{"sentences": [1], "label": "SUPPORT"}]}},
    {"id": 2, "claim": "Statins lower cholesterol.", "cited_doc_ids": [13],
     "evidence": {"13": [{"sentences": [0], "label": "SUPPORT"}]}},
]


def test_rule_labels_by_hand() -> None:
    p = np.array([0.2, 0.35, 0.45])
    assert sp.DecisionRule("argmax").label(p, 1) is None
    assert sp.DecisionRule("nei_below", 0.5).label(p, 1) == "CONTRADICT"
    assert sp.DecisionRule("nei_below", 0.4).label(p, 1) is None
    assert sp.DecisionRule("support_below", 0.5).label(p, 1) == "SUPPORT"  # the stance is not trusted, only P(NEI)
    assert sp.DecisionRule("support_below", 0.4).label(p, 1) is None
    assert "SUPPORT when P(NEI) < 0.500" in sp.DecisionRule("support_below", 0.5).describe()
    assert sp.DecisionRule("always_support").label(p, 3) == "SUPPORT"
    assert sp.DecisionRule("always_support", max_rank=1).label(p, 2) is None
    rule = sp.DecisionRule("nei_below", 0.625, 2)
    assert sp.DecisionRule.from_json(rule.to_json()) == rule and "0.625" in rule.describe()
    agg = Aggregator(np.zeros((3, 7)), np.zeros(3), "t", {"open": {"rule": rule.to_json()}})
    assert sp.rule_for(agg, "open") == rule and sp.rule_for(agg, "oracle") == sp.DecisionRule()


def _hit(doc: int, sent: int, p_s: float, p_c: float, rel: float = 0.8) -> ScoredHit:
    stance = "support" if p_s >= max(p_c, 1 - p_s - p_c) else "contradict" if p_c >= 1 - p_s - p_c else "neutral"
    ev = Evidence(passage_id=f"{doc}-{sent}", quote="x", paper=sf.paper_key(doc), page=1, section=f"s{sent}",
                  stance=stance, p_support=p_s, p_contradict=p_c, p_neutral=1 - p_s - p_c)
    return ScoredHit(evidence=ev, relevance=rel, text="x", coverage=rel)


def test_rationale_takes_the_label_stance_sentences_strongest_first() -> None:
    hits = [_hit(5, 0, 0.1, 0.1), _hit(5, 1, 0.7, 0.15), _hit(5, 2, 0.2, 0.1), _hit(5, 3, 0.55, 0.05)]
    dd = sp.DocDecision(5, 1, np.array([0.7, 0.1, 0.2]), hits, "SUPPORT")
    assert dd.rationale() == [1, 3]
    dd.label = "CONTRADICT"  # no sentence reads as contradiction: the strongest one is given
    assert dd.rationale() == [1]


def _synthetic(n: int = 120) -> tuple[list[dict], dict[int, sp.ClaimScores]]:
    """Claims whose first retrieved abstract is the cited one, with a stance signal; two unrelated ones after it."""
    rng = np.random.default_rng(0)
    gold, scores = [], {}
    for cid in range(n):
        label = ["SUPPORT", "CONTRADICT", None][cid % 3]
        docs = [100 + cid, 1000 + cid, 2000 + cid]  # the first retrieved abstract is the cited one
        strong = rng.uniform(0.55, 0.9)
        hits = {docs[0]: [_hit(docs[0], 0, strong if label == "SUPPORT" else 0.1,
                               strong if label == "CONTRADICT" else 0.05, rel=0.9)],
                docs[1]: [_hit(docs[1], 0, 0.05, 0.02, rel=0.3)], docs[2]: [_hit(docs[2], 0, 0.05, 0.02, rel=0.2)]}
        ev = {str(docs[0]): [{"sentences": [0], "label": label}]} if label else {}
        gold.append({"id": cid, "claim": "c", "cited_doc_ids": [docs[0]], "evidence": ev})
        scores[cid] = sp.ClaimScores(cid, docs, [docs[0]], hits)
    return gold, scores


def test_fit_rule_beats_or_matches_the_always_support_floor_on_its_own_claims() -> None:
    gold, scores = _synthetic()
    agg = Aggregator.load()
    for mode in sp.MODES:
        rule, fit = sp.fit_rule(scores, agg, mode, gold)
        floor = sp.decide(scores, agg, mode, sp.DecisionRule("always_support", max_rank=1))
        floor_f1 = sf.scifact_metrics(gold, [p.model_dump() for p in sp.to_predictions(floor, list(scores))])
        assert fit["abstract_label_only_f1"] > floor_f1["abstract_label_only_f1"]
        assert rule.kind != "always_support"
    # a stance signal that carries nothing: the floor itself is chosen, never something worse
    flat = {cid: sp.ClaimScores(cid, s.retrieved, s.cited, {d: [_hit(d, 0, 0.3, 0.3)] for d in s.retrieved})
            for cid, s in scores.items()}
    rule, fit = sp.fit_rule(flat, agg, "open", gold)
    floor = sp.decide(flat, agg, "open", sp.DecisionRule("always_support", max_rank=1))
    floor_f1 = sf.scifact_metrics(gold, [p.model_dump() for p in sp.to_predictions(floor, list(scores))])
    assert fit["abstract_label_only_f1"] >= floor_f1["abstract_label_only_f1"]


@pytest.fixture(scope="module")
def verifier():
    from claimscope.verify.embed import BUNDLED

    index = sp.scifact_index(CORPUS, model=BUNDLED)
    return sp.scifact_verifier(index, CORPUS, VerifySettings(stance_model="lexical", top_k=2))


def test_abstract_probabilities_are_the_products_per_paper_verdict(verifier) -> None:
    run = sp.predict(CLAIMS, CORPUS, verifier, oracle=True)
    calibrator = sp.calibrator_for(verifier.aggregator, "oracle")  # the SciFact map fitted with the aggregator
    for row in CLAIMS:
        claim = Claim(id=str(row["id"]), text=row["claim"], source="t",
                      cited=[PaperRef(local_name=sf.paper_key(d)) for d in row["cited_doc_ids"]])
        verdict = verifier.verify([claim])[0]  # what `claimscope run` reports for a claim citing that abstract
        product = np.array([list(verdict.probs.values())])
        dd = run.decisions[row["id"]][0]
        assert dd.probs.tolist() == pytest.approx((calibrator(product) if calibrator else product)[0].tolist())
        assert {h.evidence.passage_id for h in dd.hits} >= {e.passage_id for e in verdict.evidence}


def test_open_retrieval_finds_and_labels_the_matching_abstract(verifier) -> None:
    retriever = sp.DocRetriever(verifier.index)
    assert retriever.search(["Aspirin reduces stroke risk in adults."], 1) == [[11]]
    run = sp.predict(CLAIMS, CORPUS, verifier, retriever=retriever, top_docs=2)
    assert [d.doc_id for d in run.decisions[1]][0] == 11 and [d.doc_id for d in run.decisions[2]][0] == 13
    for pred in run.predictions:
        for doc, ap in pred.evidence.items():
            assert ap.label in sf.ALLOWED and 0.0 <= (ap.confidence or 0.0) <= 1.0
            assert all(0 <= s < len(CORPUS[int(doc)]["abstract"]) for s in ap.sentences)


def test_open_retrieval_scores_only_the_abstracts_the_rule_can_label(verifier) -> None:
    retriever = sp.DocRetriever(verifier.index)
    agg = verifier.aggregator
    for max_rank in (1, 2):
        rule = sp.DecisionRule("nei_below", 0.99, max_rank)
        verifier.aggregator = Aggregator(agg.coef, agg.intercept, agg.source, {"open": {"rule": rule.to_json()}})
        try:
            lean = sp.predict(CLAIMS, CORPUS, verifier, retriever=retriever, top_docs=3)
            full = sp.predict(CLAIMS, CORPUS, verifier, retriever=retriever, top_docs=3, score_all=True)
        finally:
            verifier.aggregator = agg
        assert all(len(cs.hits) <= max_rank for cs in lean.scores.values())
        assert all(len(cs.hits) == 3 for cs in full.scores.values())  # every retrieved abstract has sentences
        assert [p.model_dump() for p in lean.predictions] == [p.model_dump() for p in full.predictions]
        assert any(p.evidence for p in lean.predictions)


def test_scifact_calibration_map_is_fitted_on_train_abstracts_and_applied() -> None:
    import json

    from claimscope.verify.calibrate import nll

    gold, scores = _synthetic()
    plain = Aggregator(np.array(DEFAULT_COEF), np.zeros(3), "t")
    cal = sp.fit_calibration(scores, plain, "open", gold)
    fitted = Aggregator(plain.coef, plain.intercept, "t", {"open": {"calibration": json.loads(cal.to_json())}})
    raw, mapped = sp.decide(scores, plain, "open"), sp.decide(scores, fitted, "open")
    by_id = {g["id"]: g for g in gold}
    y = [sp.doc_gold(by_id[c], d.doc_id) for c, dds in raw.items() for d in dds]
    p_raw = np.array([d.probs for dds in raw.values() for d in dds])
    p_cal = np.array([d.probs for dds in mapped.values() for d in dds])
    assert np.allclose(p_cal, cal(p_raw)) and np.allclose(p_cal.sum(1), 1.0)
    assert nll(p_cal, y) < nll(p_raw, y)  # two of three retrieved abstracts are unrelated: the map learns that


DEFAULT_COEF = [[4.0, -2.0, 1.5, -1.0, 3.0, 1.5, -2.5], [-2.0, 4.0, 1.5, -1.0, 1.0, -2.0, 3.0],
                [0.0, 0.0, 0.0, 2.0, 0.0, 0.0, 0.0]]
