"""From scored evidence to a claim verdict, aware of paper versions.

Each retrieved passage has a stance (P(support), P(contradict), P(neutral) from the stance scorer), a retrieval
relevance and a numeric check. Per paper version these become claim-level features, and a small multinomial
logistic model (weights in `models/aggregator.json`, fitted on SciFact train by `fit_aggregator`) turns them into
label probabilities. The cited version decides; other versions that disagree are reported in the warnings.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from claimscope.types import Checks, Claim, Evidence, Label, NumberCheck, Paper, Verdict

logger = logging.getLogger(__name__)

LABELS = [Label.SUPPORTED, Label.CONTRADICTED, Label.NOT_ENOUGH_INFO]
FEATURES = ["max_support", "max_contradict", "top_relevance", "mean_neutral_top3", "numbers_consistent",
            "numbers_mismatch"]
AGGREGATOR_FILE = Path(__file__).parent / "models" / "aggregator.json"

# Used until a fitted model exists: support/contradict evidence raises its label, weak relevance raises NEI.
DEFAULT_WEIGHTS = {
    "coef": [[4.0, -2.0, 1.5, -1.0, 1.5, -2.5],
             [-2.0, 4.0, 1.5, -1.0, -2.0, 3.0],
             [0.0, 0.0, 0.0, 2.0, 0.0, 0.0]],
    "intercept": [-2.2, -2.6, 0.0],
    "source": "hand-set defaults (no fitted aggregator found)",
}


@dataclass
class ScoredHit:
    """One retrieved passage with everything the aggregator needs."""

    evidence: Evidence
    relevance: float  # 0..1, from the dense cosine similarity
    numbers: NumberCheck = field(default_factory=NumberCheck)
    text: str = ""


def relevance_from_cosine(cos: float) -> float:
    return float(np.clip((cos - 0.25) / 0.5, 0.0, 1.0))


def hit_features(hits: list[ScoredHit]) -> np.ndarray:
    if not hits:
        return np.array([0.0, 0.0, 0.0, 1.0, 0.0, 0.0])
    sup = max(h.evidence.p_support * h.relevance for h in hits)
    con = max(h.evidence.p_contradict * h.relevance for h in hits)
    top = max(h.relevance for h in hits)
    best3 = sorted(hits, key=lambda h: -h.relevance)[:3]
    neu = float(np.mean([h.evidence.p_neutral for h in best3]))
    relevant = [h for h in hits if h.relevance >= 0.4]
    consistent = float(any(h.numbers.status == "consistent" for h in relevant))
    mismatch = float(any(h.numbers.status == "mismatch" for h in relevant) and not consistent)
    return np.array([sup, con, top, neu, consistent, mismatch])


class Aggregator:
    def __init__(self, coef: np.ndarray, intercept: np.ndarray, source: str) -> None:
        self.coef = coef
        self.intercept = intercept
        self.source = source

    @classmethod
    def load(cls, path: Path = AGGREGATOR_FILE) -> Aggregator:
        data = json.loads(path.read_text()) if path.is_file() else DEFAULT_WEIGHTS
        return cls(np.array(data["coef"], dtype=float), np.array(data["intercept"], dtype=float),
                   data.get("source", str(path)))

    def probs(self, features: np.ndarray) -> np.ndarray:
        z = self.coef @ features + self.intercept
        z = z - z.max()
        e = np.exp(z)
        return e / e.sum()


def fit_aggregator(features: np.ndarray, labels: list[Label], source: str) -> dict:
    """Multinomial logistic regression on claim-level features (returns the JSON to save)."""
    from sklearn.linear_model import LogisticRegression

    y = np.array([LABELS.index(lab) for lab in labels])
    model = LogisticRegression(C=1.0, max_iter=2000)
    model.fit(features, y)
    coef = np.zeros((3, features.shape[1]))
    intercept = np.zeros(3)
    for row, cls in enumerate(model.classes_):
        coef[cls] = model.coef_[row] if len(model.classes_) > 2 else (model.coef_[0] if row else -model.coef_[0])
        intercept[cls] = model.intercept_[row] if len(model.classes_) > 2 else 0.0
    return {"coef": coef.tolist(), "intercept": intercept.tolist(), "features": FEATURES, "source": source}


def decide(claim: Claim, hits: list[ScoredHit], papers: dict[str, Paper], aggregator: Aggregator, *,
           model_name: str, max_evidence: int = 5) -> Verdict:
    """Verdict for one claim from its scored hits (all from papers the claim cites, any version)."""
    if not hits:
        return Verdict(claim_id=claim.id, label=Label.NOT_ENOUGH_INFO, confidence=1.0,
                       probs={lab.value: float(lab == Label.NOT_ENOUGH_INFO) for lab in LABELS},
                       checks=Checks(warnings=["no passage of the cited papers could be searched"]),
                       model=model_name, scope="none")
    by_key: dict[str, list[ScoredHit]] = defaultdict(list)
    for h in hits:
        by_key[h.evidence.paper].append(h)
    per_key = {key: aggregator.probs(hit_features(hs)) for key, hs in by_key.items()}

    def decisiveness(key: str) -> float:
        return 1.0 - per_key[key][2]

    strongest = max(per_key, key=decisiveness)
    arxiv_id = papers[strongest].ref.arxiv_id if strongest in papers else None
    family = [k for k in per_key if arxiv_id and k in papers and papers[k].ref.arxiv_id == arxiv_id] or [strongest]
    cited = next((r for r in claim.cited if arxiv_id and r.arxiv_id == arxiv_id), None)
    warnings: list[str] = []
    primary = strongest
    if cited is not None and cited.version is not None:
        cited_key = cited.key
        if cited_key in per_key:
            primary = cited_key
            if decisiveness(cited_key) < 0.5 and papers[cited_key].partial and strongest != cited_key:
                primary = strongest
                warnings.append(f"cited {cited_key} is only partly available and says nothing decisive; "
                                f"verdict taken from {strongest}")
        else:
            held = sorted(k for k in family)
            warnings.append(f"cited {cited_key}, which is not available; checked against {', '.join(held)} instead")
    probs = per_key[primary]
    label = LABELS[int(np.argmax(probs))]
    for other in family:
        if other == primary:
            continue
        other_label = LABELS[int(np.argmax(per_key[other]))]
        if other_label != label and other_label != Label.NOT_ENOUGH_INFO and decisiveness(other) >= 0.5:
            best = _best_for(by_key[other], other_label)
            detail = f": \u201c{_short(best.evidence.quote)}\u201d (p.{best.evidence.page})" if best else ""
            warnings.append(f"{other} disagrees ({other_label.value}){detail}; the verdict holds for "
                            f"{primary} only")
    number_details = [d for h in hits for d in h.numbers.details if h.relevance >= 0.4]
    primary_hits = by_key[primary]
    relevant_status = [h.numbers.status for h in primary_hits if h.relevance >= 0.4]
    if "consistent" in relevant_status:
        status = "consistent"
    elif "mismatch" in relevant_status:
        status = "mismatch"
    elif any(h.numbers.status == "not_applicable" for h in hits):
        status = "not_applicable"
    else:
        status = "not_found" if hits[0].numbers.status == "not_found" else "not_applicable"
    if claim.truncated:
        warnings.append("the claim was cut off in the report; checked as written"
                        + (" and as the full sentence found in the paper" if claim.full_text else ""))
    for key in {primary, *family}:
        if key in papers and papers[key].partial:
            warnings.append(f"{key} is available only in part ({papers[key].notes[0] if papers[key].notes else 'partial text'})")
    ordered = sorted(hits, key=lambda h: (h.evidence.paper != primary, -h.relevance))
    evidence = _pick_evidence(ordered, family, max_evidence)
    return Verdict(
        claim_id=claim.id,
        label=label,
        confidence=float(probs[LABELS.index(label)]),
        probs={lab.value: float(p) for lab, p in zip(LABELS, probs, strict=True)},
        evidence=[h.evidence for h in evidence],
        checks=Checks(numbers=NumberCheck(status=status, details=_dedupe(number_details)),
                      warnings=_dedupe(warnings),
                      version_cited=cited.key if cited else None,
                      version_used=sorted({primary, *[k for k in family if k != primary]})),
        model=model_name,
        scope="cited",
    )


def _pick_evidence(ordered: list[ScoredHit], family: list[str], n: int) -> list[ScoredHit]:
    """Best hits first, making sure every version in the family shows its best passage."""
    chosen: list[ScoredHit] = []
    for key in family:
        best = next((h for h in ordered if h.evidence.paper == key), None)
        if best is not None:
            chosen.append(best)
    for h in ordered:
        if len(chosen) >= n:
            break
        if h not in chosen:
            chosen.append(h)
    return sorted(chosen, key=lambda h: ordered.index(h))[:max(n, len(family))]


def _best_for(hits: list[ScoredHit], label: Label) -> ScoredHit | None:
    if not hits:
        return None
    if label == Label.CONTRADICTED:
        return max(hits, key=lambda h: (h.numbers.status == "mismatch") + h.evidence.p_contradict * h.relevance)
    return max(hits, key=lambda h: h.evidence.p_support * h.relevance)


def _short(text: str, n: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1].rstrip() + "\u2026"


def _dedupe(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))
