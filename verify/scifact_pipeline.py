"""SciFact predictions through the product's own verify path.

Per claim: candidate abstracts — the cited ones with ``oracle``, else the top ``top_docs`` documents of the index's
document search (`EvidenceIndex.search_docs`) — then `Verifier.score_hits` with the claim restricted to them (each
abstract searched on its own: its best ``top_k`` sentences, stance-scored and number-checked, as `claimscope run`
checks a cited paper) and the claim aggregator's per-paper probabilities (`aggregate.per_paper`, the step
`aggregate.decide` takes for every paper version) give P(SUPPORT), P(CONTRADICT), P(NEI) per abstract.

Fitted with the aggregator on SciFact **train** predictions (`python -m claimscope.verify.fit_aggregator`, stored in
aggregator.json under "scifact"), per mode (open / oracle): a calibration map of those probabilities (retrieved
abstracts have other base rates than cited ones) and the rule saying which abstracts get a label — the argmax,
"label when P(NEI) < t" for the top r abstracts, or always SUPPORT, whichever scores the best abstract label-only F1
on train. The written confidence is the calibrated probability of the written label.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from claimscope.types import Claim, Paper, PaperRef
from claimscope.verify import scifact as sf
from claimscope.verify.aggregate import Aggregator, ScoredHit, per_paper
from claimscope.verify.calibrate import Calibrator

if TYPE_CHECKING:
    from claimscope.settings import VerifySettings
    from claimscope.verify.index import EvidenceIndex
    from claimscope.verify.run import Verifier

logger = logging.getLogger(__name__)

DOC_LABELS = ("SUPPORT", "CONTRADICT", "NEI")
MODES = ("open", "oracle")


# ------------------------------------------------------------------------------------------------ index, retrieval


def scifact_index(corpus: Mapping[int, Mapping], index_dir: Path | None = None,
                  model: str = "bundled:all-MiniLM-L6-v2") -> EvidenceIndex:
    """The hybrid index over every corpus sentence (persisted in `index_dir` when given), with the titles known."""
    from claimscope.verify.index import EvidenceIndex

    passages = sf.corpus_passages(corpus)
    index = (EvidenceIndex.load_or_build(index_dir, passages, model) if index_dir is not None
             else EvidenceIndex.build(passages, model))
    index.set_titles({sf.paper_key(d): doc["title"] for d, doc in corpus.items()})
    return index


def scifact_papers(doc_ids: Iterable[int]) -> list[Paper]:
    return [Paper(ref=PaperRef(local_name=sf.paper_key(d)), sha256="", source="local", path="", fmt="text")
            for d in sorted(doc_ids)]


def scifact_verifier(index: EvidenceIndex, corpus: Mapping[int, Mapping], settings: VerifySettings) -> Verifier:
    """The product's Verifier over the SciFact index, every abstract a paper."""
    from claimscope.verify.run import Verifier

    return Verifier(index, scifact_papers(corpus), settings)


class DocRetriever:
    """Abstract ranking by the index's document search (`EvidenceIndex.search_docs`): stemmed BM25 over title +
    abstract fused with the dense cosines of the best sentences and of the title; `dense=False`: BM25 alone;
    `adapter=False`: base claim vectors even where the query-side adapter applies (None: the index's setting)."""

    def __init__(self, index: EvidenceIndex, *, dense: bool = True, adapter: bool | None = None) -> None:
        self.index = index
        self.dense = dense
        self.adapter = adapter

    def search(self, queries: Sequence[str], k: int) -> list[list[int]]:
        """Top-k doc ids per query."""
        out = []
        for hits in self.index.search_docs(list(queries), k, dense=self.dense, adapter=self.adapter):
            ids: list[int] = []
            for h in hits:
                d = int(h.unit.paper.split(":", 1)[1])
                if d not in ids:
                    ids.append(d)
            out.append(ids)
        return out


# ------------------------------------------------------------------------------------------------ scoring


@dataclass
class ClaimScores:
    """One claim's candidate abstracts and the product's scored sentences of each."""

    claim_id: int
    retrieved: list[int] = field(default_factory=list)  # open retrieval, best first
    cited: list[int] = field(default_factory=list)
    hits: dict[int, list[ScoredHit]] = field(default_factory=dict)  # doc id -> its scored sentences

    def candidates(self, mode: str) -> list[int]:
        return self.cited if mode == "oracle" else self.retrieved

    def top(self, k: int) -> ClaimScores:
        """The same claim scored on only the best k sentences of each abstract (they come best first)."""
        return ClaimScores(self.claim_id, self.retrieved, self.cited, {d: hs[:k] for d, hs in self.hits.items()})


def score_claims(verifier: Verifier, claims: Sequence[Mapping], corpus: Mapping[int, Mapping], *,
                 retriever: DocRetriever | None, top_docs: int = 3, oracle: bool = True,
                 batch_claims: int = 256) -> dict[int, ClaimScores]:
    """Retrieve (with a retriever) and score the cited (with `oracle`) abstracts of SciFact claim rows."""
    from rich.progress import Progress

    out: dict[int, ClaimScores] = {}
    with Progress(transient=True, disable=not logger.isEnabledFor(logging.INFO)) as bar:
        task = bar.add_task("scoring claims", total=len(claims))
        for s in range(0, len(claims), batch_claims):
            chunk = claims[s: s + batch_claims]
            ranked = retriever.search([c["claim"] for c in chunk], top_docs) if retriever else [[] for _ in chunk]
            todo = []
            for row, found in zip(chunk, ranked, strict=True):
                cs = ClaimScores(int(row["id"]), found[:top_docs])
                if oracle:
                    cs.cited = [int(d) for d in row.get("cited_doc_ids", []) if int(d) in corpus]
                out[cs.claim_id] = cs
                docs = list(dict.fromkeys(cs.retrieved + cs.cited))
                todo.append(Claim(id=str(cs.claim_id), text=row["claim"], source="scifact",
                                  cited=[PaperRef(local_name=sf.paper_key(d)) for d in docs]))
            for claim, _, _, scored in verifier.score_hits(todo):
                cs = out[int(claim.id)]
                for h in scored:
                    cs.hits.setdefault(int(h.evidence.paper.split(":", 1)[1]), []).append(h)
            bar.advance(task, len(chunk))
    return out


# ------------------------------------------------------------------------------------------------ decisions


@dataclass(frozen=True)
class DecisionRule:
    """Which abstracts get a SUPPORT/CONTRADICT label, from the aggregator's per-abstract probabilities.

    - ``argmax``: the aggregator's most probable label, when it is not NEI;
    - ``nei_below``: the likelier of SUPPORT / CONTRADICT when P(NEI) < ``threshold``;
    - ``support_below``: SUPPORT when P(NEI) < ``threshold``, never CONTRADICT (the model decides only whether an
      abstract is evidence: for a stance model that separates SUPPORT from CONTRADICT worse than the base rate does);
    - ``always_support``: SUPPORT (the no-model floor).
    Only abstracts ranked within ``max_rank`` are labelled (0: all; cited abstracts all count as rank 1).
    """

    kind: Literal["argmax", "nei_below", "support_below", "always_support"] = "argmax"
    threshold: float = 0.5
    max_rank: int = 0

    def label(self, probs: np.ndarray, rank: int) -> str | None:
        if self.max_rank and rank > self.max_rank:
            return None
        if self.kind == "always_support":
            return "SUPPORT"
        if self.kind == "argmax":
            best = int(np.argmax(probs))
            return None if best == 2 else DOC_LABELS[best]
        if probs[2] >= self.threshold:
            return None
        return "SUPPORT" if self.kind == "support_below" else DOC_LABELS[int(probs[1] > probs[0])]

    def describe(self) -> str:
        what = {"argmax": "the aggregator's argmax", "always_support": "always SUPPORT",
                "nei_below": f"SUPPORT/CONTRADICT when P(NEI) < {self.threshold:.3f}",
                "support_below": f"SUPPORT when P(NEI) < {self.threshold:.3f}"}[self.kind]
        return what + (f", top {self.max_rank} abstract(s)" if self.max_rank else "")

    def to_json(self) -> dict:
        return {"kind": self.kind, "threshold": self.threshold, "max_rank": self.max_rank}

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> DecisionRule:
        return cls(**{k: data[k] for k in ("kind", "threshold", "max_rank") if k in data}) if data else cls()


def rule_for(aggregator: Aggregator, mode: str) -> DecisionRule:
    """The rule fitted with this aggregator for `mode` ("open" or "oracle"); the argmax when none was fitted."""
    return DecisionRule.from_json(aggregator.scifact.get(mode, {}).get("rule"))


def calibrator_for(aggregator: Aggregator, mode: str) -> Calibrator | None:
    """The map from the aggregator's per-paper probabilities to calibrated per-abstract ones for `mode`.

    The aggregator is fitted on claims against the abstracts they cite; retrieved abstracts are mostly unrelated,
    so the base rates differ. This map (temperature or multinomial logistic on the log-probabilities,
    `verify.calibrate`) is fitted on train abstracts of that mode with the rule; None: probabilities as they are.
    """
    data = aggregator.scifact.get(mode, {}).get("calibration")
    return Calibrator.from_json(json.dumps(data), f"aggregator scifact.{mode}.calibration") if data else None


@dataclass
class DocDecision:
    doc_id: int
    rank: int
    probs: np.ndarray  # P(SUPPORT), P(CONTRADICT), P(NEI) for the abstract
    hits: list[ScoredHit]
    label: str | None = None  # SUPPORT / CONTRADICT, or None (nothing written)

    def rationale(self, n: int = 3) -> list[int]:
        """Sentence indices read as the label's stance, strongest first (else the strongest sentence)."""
        col = 1 if self.label == "CONTRADICT" else 0
        key = ("p_support", "p_contradict")[col]
        order = sorted(self.hits, key=lambda h: -getattr(h.evidence, key))
        chosen = [h for h in order if h.evidence.stance == ("support", "contradict")[col]][:n] or order[:1]
        return [_sentence(h) for h in chosen]


def _sentence(hit: ScoredHit) -> int:
    section = hit.evidence.section or ""
    return int(section[1:]) if section.startswith("s") else 0


def decide(scores: Mapping[int, ClaimScores], aggregator: Aggregator, mode: str,
           rule: DecisionRule | None = None) -> dict[int, list[DocDecision]]:
    """Per-abstract decisions; with "oracle" every cited abstract counts as rank 1."""
    rule = rule or rule_for(aggregator, mode)
    calibrator = calibrator_for(aggregator, mode)
    out: dict[int, list[DocDecision]] = {}
    for cid, cs in scores.items():
        hits = [h for d in cs.candidates(mode) for h in cs.hits.get(d, [])]
        _, probs = per_paper(hits, aggregator)
        decisions = []
        for rank, d in enumerate(cs.candidates(mode), 1):
            r = 1 if mode == "oracle" else rank
            p = probs.get(sf.paper_key(d), np.array([0.0, 0.0, 1.0]))
            if calibrator is not None:
                p = calibrator(p[None, :])[0]
            decisions.append(DocDecision(d, r, p, cs.hits.get(d, []), rule.label(p, r)))
        out[cid] = decisions
    return out


def to_predictions(decisions: Mapping[int, list[DocDecision]], claim_ids: Sequence[int]) -> list[sf.ClaimPrediction]:
    preds = []
    for cid in claim_ids:
        ev = {}
        for dd in decisions.get(cid, []):
            if dd.label is not None:
                conf = float(dd.probs[DOC_LABELS.index(dd.label)])
                ev[str(dd.doc_id)] = sf.AbstractPrediction(label=dd.label, sentences=dd.rationale(),
                                                           confidence=round(conf, 6))
        preds.append(sf.ClaimPrediction(id=cid, evidence=ev))
    return preds


def doc_gold(gold_row: Mapping, doc_id: int) -> int:
    ev = gold_row.get("evidence", {}).get(str(doc_id))
    return DOC_LABELS.index(ev[0]["label"]) if ev else 2


def decision_calibration(decisions: Mapping[int, list[DocDecision]], gold: Mapping[int, Mapping]) -> dict[str, Any]:
    """ECE / Brier of the abstract-level 3-way probabilities over all candidate abstracts."""
    from claimscope.verify.calibrate import calibration_metrics, ece_if_calibrated, reliability, top_label

    probs, ys = [], []
    for cid, dds in decisions.items():
        for dd in dds:
            probs.append(dd.probs)
            ys.append(doc_gold(gold[cid], dd.doc_id))
    p = np.asarray(probs).reshape(-1, 3)
    y = np.asarray(ys, dtype=int)
    conf, ok = top_label(p, y)
    floor, floor_95 = ece_if_calibrated(conf)
    return calibration_metrics(p, y) | {"reliability": reliability(conf, ok), "ece_if_calibrated": floor,
                                        "ece_if_calibrated_p95": floor_95}


# ------------------------------------------------------------------------------------------------ fitting the rule


def candidate_rules(max_docs: int = 3) -> list[DecisionRule]:
    """The argmax, "P(NEI) < t" (with the likelier stance, or SUPPORT only) over a grid of t, and always-SUPPORT,
    each for the top 1..max_docs or all abstracts."""
    ranks = [0] + list(range(1, max_docs))
    rules = [DecisionRule("argmax", max_rank=r) for r in ranks]
    grid = [round(float(t), 3) for t in np.arange(0.05, 1.0001, 0.025)]
    rules += [DecisionRule(kind, t, r) for kind in ("nei_below", "support_below") for t in grid for r in ranks]
    rules += [DecisionRule("always_support", max_rank=r) for r in ranks]
    return rules


def fit_calibration(scores: Mapping[int, ClaimScores], aggregator: Aggregator, mode: str,
                    gold: Sequence[Mapping]) -> Calibrator:
    """A calibrator of the per-abstract probabilities of `mode` on these (train) claims' abstracts."""
    from claimscope.verify.calibrate import fit

    plain = Aggregator(aggregator.coef, aggregator.intercept, aggregator.source)  # the uncalibrated probabilities
    by_id = {int(g["id"]): g for g in gold}
    rows = [(d.probs, doc_gold(by_id[cid], d.doc_id)) for cid, dds in decide(scores, plain, mode).items()
            for d in dds]
    return fit(np.array([p for p, _ in rows]), [y for _, y in rows])


def fit_rule(scores: Mapping[int, ClaimScores], aggregator: Aggregator, mode: str, gold: Sequence[Mapping],
             max_docs: int = 3) -> tuple[DecisionRule, dict[str, float]]:
    """The candidate rule with the best abstract label-only F1 on these (train) claims; first listed wins ties.

    Always-SUPPORT is a candidate, so the fitted rule is never below that floor on the claims it was fitted on.
    """
    best: tuple[float, DecisionRule] | None = None
    ids = [int(g["id"]) for g in gold]
    base = decide(scores, aggregator, mode, DecisionRule("always_support"))
    for rule in candidate_rules(max_docs):
        decisions = {cid: [DocDecision(d.doc_id, d.rank, d.probs, d.hits, rule.label(d.probs, d.rank)) for d in dds]
                     for cid, dds in base.items()}
        f1 = sf.scifact_metrics(gold, [p.model_dump() for p in to_predictions(decisions, ids)])[
            "abstract_label_only_f1"]
        if best is None or f1 > best[0] + 1e-12:
            best = (f1, rule)
    assert best is not None
    return best[1], {"abstract_label_only_f1": best[0]}


# ------------------------------------------------------------------------------------------------ predict


@dataclass
class SciFactRun:
    predictions: list[sf.ClaimPrediction]
    decisions: dict[int, list[DocDecision]]
    seconds: float
    scores: dict[int, ClaimScores] = field(default_factory=dict)


def predict(claims: Sequence[Mapping], corpus: Mapping[int, Mapping], verifier: Verifier, *,
            retriever: DocRetriever | None = None, oracle: bool = False, top_docs: int = 3,
            score_all: bool = False, batch_claims: int = 256) -> SciFactRun:
    """Predictions for SciFact claim rows (``{id, claim, cited_doc_ids?}``) by the verifier's aggregator and rule.

    With open retrieval only the abstracts the fitted rule can label (its ``max_rank``) are scored: the others would
    get probabilities but never a label, so the predictions are the same at a fraction of the stance pairs.
    `score_all` scores all `top_docs` anyway (to measure calibration over every retrieved abstract).
    """
    from claimscope.errors import ClaimscopeError

    if not oracle and retriever is None:
        raise ClaimscopeError("predict", "open retrieval needs a DocRetriever")
    rule = rule_for(verifier.aggregator, "oracle" if oracle else "open")
    if not oracle and rule.max_rank and not score_all:
        top_docs = min(top_docs, rule.max_rank)
    t0 = time.perf_counter()
    scores = score_claims(verifier, claims, corpus, retriever=None if oracle else retriever, top_docs=top_docs,
                          oracle=oracle, batch_claims=batch_claims)
    decisions = decide(scores, verifier.aggregator, "oracle" if oracle else "open")
    ids = [int(c["id"]) for c in claims]
    return SciFactRun(to_predictions(decisions, ids), decisions, time.perf_counter() - t0, scores)
