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
from typing import Any

import numpy as np

from claimscope.types import Checks, Claim, Evidence, Label, NumberCheck, Paper, Verdict

logger = logging.getLogger(__name__)

LABELS = [Label.SUPPORTED, Label.CONTRADICTED, Label.NOT_ENOUGH_INFO]
FEATURES = ["max_support", "max_contradict", "top_relevance", "mean_neutral_top3", "max_coverage",
            "numbers_consistent", "numbers_mismatch"]
AGGREGATOR_FILE = Path(__file__).parent / "models" / "aggregator.json"

# Used until a fitted model exists: support/contradict evidence raises its label, weak relevance raises NEI.
DEFAULT_WEIGHTS: dict[str, Any] = {
    "coef": [[4.0, -2.0, 1.5, -1.0, 3.0, 1.5, -2.5],
             [-2.0, 4.0, 1.5, -1.0, 1.0, -2.0, 3.0],
             [0.0, 0.0, 0.0, 2.0, 0.0, 0.0, 0.0]],
    "intercept": [-4.0, -4.5, 0.0],
    "source": "hand-set defaults (no fitted aggregator found)",
}


@dataclass
class ScoredHit:
    """One retrieved passage with everything the aggregator needs."""

    evidence: Evidence
    relevance: float  # 0..1, from the dense cosine similarity
    numbers: NumberCheck = field(default_factory=NumberCheck)
    text: str = ""
    coverage: float = 0.0  # share of the claim's content words found in the passage


_STOP = frozenset("""a an the of in on at to for from by with and or but not no is are was were be been being this that
these those it its as we our they their than then there here which who whom whose what when where how such into over
under about between both each other more most can could may might will would shall should do does did has have had
also only very all any some same so""".split())


def _stems(text: str) -> set[str]:
    import re

    words = [w for w in re.findall(r"[a-z0-9]+(?:[.-][a-z0-9]+)*", text.lower()) if w not in _STOP]
    return set(_STEMMER.stemWords(words)) if words else set()


class _LazyStemmer:
    _impl = None

    def stemWords(self, words: list[str]) -> list[str]:  # noqa: N802 (PyStemmer's name)
        if self._impl is None:
            import Stemmer

            self._impl = Stemmer.Stemmer("english")
        return self._impl.stemWords(words)


_STEMMER = _LazyStemmer()


def claim_coverage(claim: str, passage: str) -> float:
    """Share of the claim's content words (stemmed, stop words dropped) that the passage contains."""
    want = _stems(claim)
    return len(want & _stems(passage)) / len(want) if want else 0.0


def relevance_from_cosine(cos: float) -> float:
    return float(np.clip((cos - 0.25) / 0.5, 0.0, 1.0))


def hit_features(hits: list[ScoredHit]) -> np.ndarray:
    if not hits:
        return np.array([0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0])
    sup = max(h.evidence.p_support * h.relevance for h in hits)
    con = max(h.evidence.p_contradict * h.relevance for h in hits)
    top = max(h.relevance for h in hits)
    best3 = sorted(hits, key=lambda h: -h.relevance)[:3]
    neu = float(np.mean([h.evidence.p_neutral for h in best3]))
    relevant = [h for h in hits if h.relevance >= 0.4]
    consistent = float(any(h.numbers.status == "consistent" for h in relevant))
    mismatch = float(any(h.numbers.status == "mismatch" for h in relevant) and not consistent)
    coverage = max(h.coverage for h in hits)
    return np.array([sup, con, top, neu, coverage, consistent, mismatch])


class Aggregator:
    def __init__(self, coef: np.ndarray, intercept: np.ndarray, source: str, scifact: dict | None = None) -> None:
        self.coef = coef
        self.intercept = intercept
        self.source = source
        self.scifact = scifact or {}  # SciFact output decision rules fitted with it (verify.scifact_pipeline)

    @classmethod
    def load(cls, path: Path = AGGREGATOR_FILE) -> Aggregator:
        data: dict[str, Any] = json.loads(path.read_text()) if path.is_file() else DEFAULT_WEIGHTS
        return cls(np.array(data["coef"], dtype=float), np.array(data["intercept"], dtype=float),
                   data.get("source", str(path)), data.get("scifact"))

    def probs(self, features: np.ndarray) -> np.ndarray:
        z = self.coef @ features + self.intercept
        z = z - z.max()
        e = np.exp(z)
        return e / e.sum()


AGGREGATOR_CS = (0.01, 0.1, 1.0, 10.0, 100.0)  # regularisation strengths tried, by 5-fold log-loss on train


def fit_aggregator(features: np.ndarray, labels: list[Label], source: str) -> dict:
    """Multinomial logistic regression on claim-level features (returns the JSON to save); its regularisation is
    chosen by 5-fold cross-validated log-loss, so a small training set is not shrunk into under-confidence."""
    from sklearn.linear_model import LogisticRegression, LogisticRegressionCV

    y = np.array([LABELS.index(lab) for lab in labels])
    folds = min(5, int(np.bincount(y).min())) if len(set(y.tolist())) > 1 else 0
    if folds >= 2:
        model = LogisticRegressionCV(Cs=list(AGGREGATOR_CS), cv=folds, scoring="neg_log_loss", max_iter=5000)
    else:
        model = LogisticRegression(C=1.0, max_iter=2000)
    model.fit(features, y)
    coef = np.zeros((3, features.shape[1]))
    intercept = np.zeros(3)
    for row, cls in enumerate(model.classes_):
        coef[cls] = model.coef_[row] if len(model.classes_) > 2 else (model.coef_[0] if row else -model.coef_[0])
        intercept[cls] = model.intercept_[row] if len(model.classes_) > 2 else 0.0
    c = float(np.ravel(model.C_)[0]) if hasattr(model, "C_") else 1.0
    return {"coef": coef.tolist(), "intercept": intercept.tolist(), "features": FEATURES, "source": source, "C": c}


def per_paper(hits: list[ScoredHit], aggregator: Aggregator
              ) -> tuple[dict[str, list[ScoredHit]], dict[str, np.ndarray]]:
    """Hits grouped by paper version, and each version's label probabilities (SUPPORTED, CONTRADICTED, NEI)."""
    by_key: dict[str, list[ScoredHit]] = defaultdict(list)
    for h in hits:
        by_key[h.evidence.paper].append(h)
    return by_key, {key: aggregator.probs(hit_features(hs)) for key, hs in by_key.items()}


def decide(claim: Claim, hits: list[ScoredHit], papers: dict[str, Paper], aggregator: Aggregator, *,
           model_name: str, max_evidence: int = 5) -> Verdict:
    """Verdict for one claim from its scored hits (searched separately in every held version of each cited paper).

    The version the claim cites decides. When it is not held, or held only in part and silent on the claim, the
    version with the most decisive evidence decides instead, and a warning says so. Any other version of the same
    paper that disagrees — in label or in the numbers the claim states — is named with its quote and page.
    """
    if not hits:
        return Verdict(claim_id=claim.id, label=Label.NOT_ENOUGH_INFO, confidence=1.0,
                       probs={lab.value: float(lab == Label.NOT_ENOUGH_INFO) for lab in LABELS},
                       checks=Checks(warnings=["no passage of the cited papers could be searched"]),
                       model=model_name, scope="none")
    by_key, per_key = per_paper(hits, aggregator)

    def decisiveness(key: str) -> float:
        return 1.0 - per_key[key][2] if key in per_key else 0.0

    numbers_of: dict[str, _Numbers] = {}  # each version's numbers check and verbatim sentence, found once
    verbatim_of: dict[str, ScoredHit | None] = {}

    def numbers_in(key: str) -> _Numbers:
        if key not in numbers_of:
            numbers_of[key] = _numbers_check(claim.text, by_key[key])
        return numbers_of[key]

    def verbatim_in(key: str) -> ScoredHit | None:
        if key not in verbatim_of:
            verbatim_of[key] = _stated_verbatim(claim.text, by_key[key])
        return verbatim_of[key]

    strongest = max(per_key, key=decisiveness)
    arxiv_id = papers[strongest].ref.arxiv_id if strongest in papers else None
    family = sorted(k for k, p in papers.items() if arxiv_id and p.ref.arxiv_id == arxiv_id and k in per_key)
    family = family or [strongest]
    cited = next((r for r in claim.cited if arxiv_id and r.arxiv_id == arxiv_id), None)
    warnings: list[str] = []
    primary = strongest
    if cited is not None and cited.version is not None:
        if cited.key in per_key:
            primary = cited.key
            speaks = int(np.argmax(per_key[primary])) != LABELS.index(Label.NOT_ENOUGH_INFO) or numbers_in(
                primary).status in {"consistent", "mismatch"}
            if not speaks and papers[primary].partial and strongest != primary:
                primary = strongest
                warnings.append(f"cited {cited.key} is held only in part and says nothing decisive on this claim; "
                                f"the verdict comes from {strongest}")
        else:
            warnings.append(f"cited {cited.key} is not available; checked against {', '.join(family)} instead")
    elif cited is not None and len(family) > 1:
        warnings.append(f"the citation gives no version; {primary} decides, {len(family) - 1} other version(s) read")
    if primary in papers and papers[primary].partial and verbatim_in(primary) is None:
        # a version held only in part cannot speak for the text we lack: another version that states the claim word
        # for word decides, unless the part we hold states other numbers or reads as a contradiction
        stated = next((k for k in family if k != primary and verbatim_in(k)), None)
        reads_against = (int(np.argmax(per_key[primary])) == LABELS.index(Label.CONTRADICTED)
                         and decisiveness(primary) >= 0.5)
        if stated and not reads_against and numbers_in(primary).status != "mismatch":
            warnings.append(f"{primary} is held only in part; {stated} states the claim word for word and decides")
            primary = stated
    probs = per_key[primary]
    label = LABELS[int(np.argmax(probs))]

    numbers = numbers_in(primary)
    number_details = numbers.details
    verbatim = verbatim_in(primary)
    if verbatim is not None and numbers.status != "mismatch":
        s, c, n = (float(x) for x in probs)
        probs = np.array([s + c, 0.0, n])
        read_as, label = label, LABELS[int(np.argmax(probs))]
        warnings.append(f"{primary} states the claim word for word (p.{verbatim.evidence.page})" + (
            f"; the evidence model's reading as {read_as.value} is set aside" if read_as != label else ""))
    if label == Label.SUPPORTED and numbers.status == "mismatch":
        probs, label, why = _numbers_override(probs, papers[primary].partial if primary in papers else False)
        differs = next((d for d in number_details if "differs" in d), number_details[0] if number_details else "")
        warnings.append(f"{why}: {differs}")
    concurring = list(by_key[primary])  # passages of the versions that do not read otherwise: quotable for the verdict
    number_hits = numbers.agreeing if label == Label.SUPPORTED else numbers.differing
    number_where: dict[int, int] = {}
    for other in family:
        if other == primary:
            continue
        other_label = LABELS[int(np.argmax(per_key[other]))]
        other_numbers = numbers_in(other)
        other_details = other_numbers.details
        dissents = False
        if other_label != label and other_label != Label.NOT_ENOUGH_INFO and decisiveness(other) >= 0.5:
            best = _best_for(by_key[other], other_label)
            where = f": \u201c{_short(best.evidence.quote)}\u201d (p.{best.evidence.page})" if best else ""
            warnings.append(f"{other} reads as {other_label.value}{where}; the verdict holds for {primary}")
            dissents = True
        if other_numbers.status == "mismatch" and numbers.status != "mismatch":
            mismatch = next((d for d in other_details if "differs" in d), other_details[0])
            warnings.append(f"{other} states different numbers: {mismatch}; the verdict holds for {primary} only")
            dissents = True
        elif other_numbers.status == "consistent" and numbers.status == "mismatch":
            agree = next((d for d in other_details if "agrees" in d), other_details[0])
            warnings.append(f"{other} states the claim's numbers: {agree}; the verdict holds for {primary} only")
            dissents = True
        if not dissents:
            concurring += by_key[other]
            number_hits = number_hits + (other_numbers.agreeing if label == Label.SUPPORTED else [])
            number_where |= other_numbers.where
    if claim.truncated:
        warnings.append("the claim was cut off in the report; checked as written"
                        + (" and as the full sentence found in the paper" if claim.full_text else ""))
    said = " ".join(warnings)
    for key in family:  # a partial version matters where it decides, is the one cited, or a warning above names it
        if key in papers and papers[key].partial and (key == primary or (cited and key == cited.key) or key in said):
            notes = papers[key].notes
            note = next((n for n in notes if "partial" in n.lower() or "damaged" in n.lower()), notes[0] if notes
                        else "partial text")
            warnings.append(f"{key} is held only in part ({note})")
    shows = _shows_verdict(concurring, label, number_hits, verbatim, numbers.where | number_where)
    evidence = _pick_evidence(by_key, primary, family, max_evidence, first=shows)
    return Verdict(
        claim_id=claim.id,
        label=label,
        confidence=float(probs[LABELS.index(label)]),
        probs={lab.value: float(p) for lab, p in zip(LABELS, probs, strict=True)},
        evidence=[h.evidence for h in evidence],
        checks=Checks(numbers=numbers.check,
                      warnings=_dedupe(warnings),
                      version_cited=cited.key if cited else None,
                      version_used=[primary] + [k for k in family if k != primary]),
        model=model_name,
        scope="cited",
    )


def _sentence_form(text: str) -> str:
    """Lower-cased words and numbers only, so PDF line breaks, hyphenation, bullets and quotes do not matter."""
    import re

    return " ".join(re.findall(r"[a-z0-9]+", text.lower().replace("-\n", "")))


def _stated_verbatim(claim_text: str, hits: list[ScoredHit], min_words: int = 5) -> ScoredHit | None:
    """The passage in which the paper states the claim as a whole sentence of its own, if any; `decide` then moves
    the probability that the paper speaks to the claim (SUPPORTED + CONTRADICTED) to SUPPORTED.

    A paper does not contradict its own sentence, but the stance model, trained on SciFact's rewritten claims, never
    saw a claim identical to its evidence and can read e.g. "neither X nor Y improves ..." against itself as a
    contradiction. Whole sentences only: a claim quoted inside a longer sentence ("prior work reported that ...")
    is left to the model."""
    import re

    want = _sentence_form(claim_text)
    if len(want.split()) < min_words:
        return None
    for hit in hits:
        for sentence in re.split(r"(?<!\bal\.)(?<!e\.g\.)(?<!i\.e\.)(?<=[.!?])\s+|\n\s*\n|\s*•\s*", hit.text):
            if _sentence_form(sentence) == want:
                return hit
    return None


def _numbers_override(probs: np.ndarray, partial: bool) -> tuple[np.ndarray, Label, str]:
    """A SUPPORTED reading whose evidence states other values for what the claim quantifies is not support.

    The aggregator's numbers features are fitted on SciFact, where claims that state numbers the evidence contradicts
    are too rare to weigh, so the rule is written here: the probability that the paper speaks to the claim
    (SUPPORTED + CONTRADICTED) goes to CONTRADICTED when the full text is held; a version held only in part may
    state the claim's values where we cannot read, so there it goes to NOT ENOUGH INFO."""
    s, c, n = (float(x) for x in probs)
    if partial:  # s was the largest, so n + s > c: the verdict is NOT ENOUGH INFO
        return np.array([0.0, c, n + s]), Label.NOT_ENOUGH_INFO, (
            "the numbers differ from the part of the paper we hold, so the reading as SUPPORTED is withdrawn")
    return np.array([0.0, s + c, n]), Label.CONTRADICTED if s + c >= n else Label.NOT_ENOUGH_INFO, (
        "the numbers differ from the evidence, so the reading as SUPPORTED becomes CONTRADICTED")


@dataclass
class _Numbers:
    """The claim's quantities against one paper version: the check, its lines, and the passages that agree / differ."""

    check: NumberCheck
    details: list[str]
    agreeing: list[ScoredHit] = field(default_factory=list)
    differing: list[ScoredHit] = field(default_factory=list)
    where: dict[int, int] = field(default_factory=dict)  # id(hit) -> where in its text its first compared number is

    @property
    def status(self) -> str:
        return self.check.status


def _numbers_check(claim_text: str, hits: list[ScoredHit], n: int = 8) -> _Numbers:
    """Compare the claim's quantities with the relevant passages of one paper version."""
    from claimscope.verify.numbers import compare_quantities

    top = sorted((h for h in hits if h.relevance >= 0.2), key=lambda h: -h.relevance)[:n]
    if not top:
        status = "not_applicable" if not _has_numbers(claim_text) else "not_found"
        return _Numbers(NumberCheck(status=status), [])
    result = compare_quantities(claim_text, [h.text for h in top])
    details = []
    agreeing: list[ScoredHit] = []
    differing: list[ScoredHit] = []
    where: dict[int, int] = {}
    for m in result.matches:
        if m.evidence is None or m.evidence_index is None:
            details.append(f"claim says {m.claim.describe()}; not stated in the passages read")
            continue
        hit = top[m.evidence_index]
        (agreeing if m.status == "match" else differing).append(hit)
        where[id(hit)] = min(where.get(id(hit), m.evidence.start), m.evidence.start)
        verb = "agrees" if m.status == "match" else "differs"
        details.append(f"claim says {m.claim.describe()}; {hit.evidence.paper} p.{hit.evidence.page} says "
                       f"{m.evidence.describe()} ({verb})")
    return _Numbers(NumberCheck(status=result.status, details=_dedupe(details)), _dedupe(details), agreeing, differing,
                    where)


def _has_numbers(text: str) -> bool:
    from claimscope.verify.numbers import extract_quantities

    return bool(extract_quantities(text))


def _shows_verdict(hits: list[ScoredHit], label: Label, number_hits: list[ScoredHit], verbatim: ScoredHit | None,
                   number_at: dict[int, int]) -> ScoredHit | None:
    """The passage to quote first for the verdict, from the versions that concur with it (`hits`): the sentence
    stated word for word; a passage stating the claim's numbers (SUPPORTED) or other numbers (CONTRADICTED)
    (`number_hits`), the one where they come first (`number_at`: overlapping windows hold the same sentence, and the
    report shows a quote's opening); else the passage the evidence model reads most strongly that way. None for NOT
    ENOUGH INFO."""
    if label == Label.NOT_ENOUGH_INFO or not hits:
        return None
    if verbatim is not None and label == Label.SUPPORTED:
        return verbatim

    def shows(h: ScoredHit) -> float:
        # how much of the claim the passage says in its words, plus the evidence model's reading that way: where the
        # verdict rests on claim-level features and every passage reads as neutral, the passage stating the claim
        # still has most of its words (relevance alone favours on-topic passages such as the abstract)
        return h.coverage + (h.evidence.p_support if label == Label.SUPPORTED else h.evidence.p_contradict)

    if number_hits:
        best = min(number_hits, key=lambda h: (number_at.get(id(h), 0), -shows(h)))
        return _opening_with(best, number_at.get(id(best), 0), hits)
    return max(hits, key=shows)


def _opening_with(hit: ScoredHit, at: int, hits: list[ScoredHit]) -> ScoredHit:
    """Of the passages holding the sentence of `hit` at offset `at` (passages are overlapping windows of sentences),
    the one where it comes first, so the quote's opening, which the report shows, states the number."""
    import re

    starts = [0] + [m.end() for m in re.finditer(r"(?<=[.!?])\s+", hit.text) if m.end() <= at]
    end = re.search(r"[.!?](?=\s|$)", hit.text[at:])
    sentence = hit.text[starts[-1]: at + end.end() if end else len(hit.text)].strip()
    holding = [h for h in hits if sentence and sentence in h.text] or [hit]
    return min(holding, key=lambda h: (h.text.find(sentence), h is not hit))


def _pick_evidence(by_key: dict[str, list[ScoredHit]], primary: str, family: list[str], n: int,
                   first: ScoredHit | None = None) -> list[ScoredHit]:
    """`first` (the passage that shows the verdict, from any version that concurs), then the deciding version's best
    passages, then the best passage of every other version."""
    def strength(h: ScoredHit) -> float:
        return h.relevance * max(h.evidence.p_support, h.evidence.p_contradict, 0.2)

    elsewhere = first.evidence.paper if first is not None and first.evidence.paper != primary else None
    room = max(1, n - (len(family) - 1)) + (elsewhere is not None)
    ordered = [first] if first is not None else []
    ordered += sorted((h for h in by_key[primary] if h is not first), key=lambda h: -strength(h))
    chosen = _distinct(ordered)[:room]
    for key in family:
        if key != primary and key != elsewhere and by_key.get(key):
            chosen.append(max(by_key[key], key=strength))
    others = sorted((h for k, hs in by_key.items() if k not in family for h in hs), key=lambda h: -strength(h))
    chosen.extend(others[: max(0, n - len(chosen))])
    for rank, h in enumerate(chosen, 1):
        h.evidence.rank = rank
    return chosen


def _distinct(hits: list[ScoredHit]) -> list[ScoredHit]:
    """Drop passages whose text repeats an earlier one (a partial file can hold the same abstract twice)."""
    seen: set[str] = set()
    out = []
    for h in hits:
        key = "".join(ch for ch in h.text.lower() if ch.isalnum())
        if key not in seen:
            seen.add(key)
            out.append(h)
    return out


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
