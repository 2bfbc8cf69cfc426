"""SciFact predictions: retrieve abstracts, score each sentence's stance, decide per abstract.

Per claim: candidate abstracts (the cited ones with ``oracle=True``, else the top retrieved), every sentence of each
candidate scored by the stance scorer, and an abstract-level rule (multinomial logistic regression over the sentence
scores and the retrieval rank, fitted on SciFact **train** claims held out from stance training, stored as JSON) giving
P(SUPPORT), P(CONTRADICT), P(NEI) for the abstract. The predicted label's probability is the written confidence.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from claimscope.errors import ClaimscopeError
from claimscope.rundir import atomic_write_text
from claimscope.verify import scifact as sf
from claimscope.verify.stance import StanceScorer

if TYPE_CHECKING:
    from claimscope.verify.index import EvidenceIndex

logger = logging.getLogger(__name__)

RULE_PATH = Path(__file__).parent / "models" / "scifact-abstract-rule.json"
DOC_LABELS = ("SUPPORT", "CONTRADICT", "NEI")
MAX_RANK_FEATURE = 3


class BadRule(ClaimscopeError):
    pass


# ------------------------------------------------------------------------------------------------ doc retrieval


def scifact_index(corpus: Mapping[int, Mapping], index_dir: Path | None = None,
                  model: str = "bundled:all-MiniLM-L6-v2") -> EvidenceIndex:
    """The hybrid index over every corpus sentence (persisted in `index_dir` when given), with the titles known."""
    from claimscope.verify.index import EvidenceIndex

    passages = sf.corpus_passages(corpus)
    index = (EvidenceIndex.load_or_build(index_dir, passages, model) if index_dir is not None
             else EvidenceIndex.build(passages, model))
    index.set_titles({sf.paper_key(d): doc["title"] for d, doc in corpus.items()})
    return index


class DocRetriever:
    """Abstract ranking by the index's document search (`EvidenceIndex.search_docs`): stemmed BM25 over title +
    abstract fused with the dense cosines of the best sentences and of the title; `dense=False`: BM25 alone."""

    def __init__(self, index: EvidenceIndex, *, dense: bool = True) -> None:
        self.index = index
        self.dense = dense

    def search(self, queries: Sequence[str], k: int) -> list[list[int]]:
        """Top-k doc ids per query."""
        out = []
        for hits in self.index.search_docs(list(queries), k, dense=self.dense):
            ids: list[int] = []
            for h in hits:
                d = int(h.unit.paper.split(":", 1)[1])
                if d not in ids:
                    ids.append(d)
            out.append(ids)
        return out


# -------------------------------------------------------------------------------------------- abstract decision


def doc_features(sent_probs: np.ndarray, rank: int) -> np.ndarray:
    """Features of one abstract from its sentences' [P(s), P(c), P(n)] rows and its retrieval rank (1-based)."""
    p = np.asarray(sent_probs, dtype=np.float64)
    s, c = p[:, 0], p[:, 1]
    top2 = np.sort(s + c)[::-1][:2]
    r = min(rank, MAX_RANK_FEATURE + 1)
    return np.array([s.max(), c.max(), (s - c)[np.argmax(s + c)], top2.mean(), float(r == 1), float(r == 2),
                     float(r == 3)])


@dataclass
class AbstractRule:
    coef: list[list[float]]
    intercept: list[float]
    meta: dict = field(default_factory=dict)

    def probs(self, features: np.ndarray) -> np.ndarray:
        z = np.atleast_2d(features) @ np.asarray(self.coef).T + np.asarray(self.intercept)
        z -= z.max(1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(1, keepdims=True)

    def save(self, path: Path = RULE_PATH) -> None:
        atomic_write_text(path, json.dumps({"labels": list(DOC_LABELS), "coef": self.coef, "intercept": self.intercept,
                                            "meta": self.meta}, indent=2) + "\n")

    @classmethod
    def load(cls, path: Path = RULE_PATH) -> AbstractRule:
        try:
            d = json.loads(Path(path).read_text(encoding="utf-8"))
            return cls(d["coef"], d["intercept"], d.get("meta", {}))
        except (OSError, KeyError, json.JSONDecodeError) as e:
            raise BadRule(str(path), f"cannot read the SciFact abstract rule: {e}") from e

    @classmethod
    def for_scorer(cls, scorer: StanceScorer, path: Path = RULE_PATH) -> AbstractRule:
        """The saved rule when it was fitted on this scorer's outputs (same name and weights hash), else the default."""
        if Path(path).exists():
            rule = cls.load(path)
            meta = rule.meta
            if meta.get("stance_model") == scorer.info.name and meta.get("stance_sha256") == scorer.info.sha256:
                return rule
            logger.warning("%s was fitted for another stance model; using the untrained rule", path)
        return cls.default()

    @classmethod
    def default(cls) -> AbstractRule:
        """Untrained fallback: the larger of max P(support) / max P(contradict) against 0.5."""
        coef = np.zeros((3, 7))
        coef[0, 0] = coef[1, 1] = 8.0
        return cls(coef.tolist(), [-4.0, -4.0, 0.0], {"fitted": False})


def fit_rule(features: np.ndarray, labels: Sequence[int], c: float = 1.0) -> AbstractRule:
    from sklearn.linear_model import LogisticRegression

    lr = LogisticRegression(C=c, max_iter=5000)
    lr.fit(features, np.asarray(labels))
    coef = np.zeros((3, features.shape[1]))
    intercept = np.full(3, -30.0)  # a class never seen gets ~0 probability
    for row, cls in enumerate(lr.classes_):
        coef[int(cls)] = lr.coef_[row]
        intercept[int(cls)] = lr.intercept_[row]
    return AbstractRule(coef.tolist(), intercept.tolist(), {"fitted": True, "n": int(len(labels)),
                                                            "class_counts": np.bincount(labels, minlength=3).tolist()})


# ------------------------------------------------------------------------------------------------------ predict


@dataclass
class DocDecision:
    doc_id: int
    rank: int
    probs: np.ndarray  # P(SUPPORT), P(CONTRADICT), P(NEI) for the abstract
    sentence_probs: np.ndarray  # (n_sentences, 3)

    @property
    def label(self) -> str:
        return DOC_LABELS[int(np.argmax(self.probs))]

    def rationale(self, n: int = 3) -> list[int]:
        col = 0 if self.label == "SUPPORT" else 1
        order = np.argsort(-self.sentence_probs[:, col], kind="stable")
        chosen = [int(i) for i in order if self.sentence_probs[i].argmax() == col][:n]
        return chosen or [int(order[0])]


def score_docs(claims: Sequence[tuple[int, str]], candidates: Mapping[int, Sequence[int]],
               corpus: Mapping[int, Mapping], scorer: StanceScorer) -> dict[tuple[int, int], np.ndarray]:
    """Sentence stance probabilities for every (claim id, candidate doc id), scored in one batch."""
    pairs: list[tuple[str, str]] = []
    spans: list[tuple[tuple[int, int], int, int]] = []
    for cid, text in claims:
        for d in candidates.get(cid, []):
            sents = corpus[d]["abstract"]
            spans.append(((cid, d), len(pairs), len(pairs) + len(sents)))
            pairs.extend((text, s) for s in sents)
    probs = scorer.score(pairs)
    return {key: probs[a:b] for key, a, b in spans}


def decide(claims: Sequence[tuple[int, str]], candidates: Mapping[int, Sequence[int]], corpus: Mapping[int, Mapping],
           scorer: StanceScorer, rule: AbstractRule, *, oracle: bool = False) -> dict[int, list[DocDecision]]:
    """Abstract decisions; with `oracle` every candidate counts as rank 1 (cited abstracts are not ranked)."""
    scored = score_docs(claims, candidates, corpus, scorer)
    out: dict[int, list[DocDecision]] = {}
    for cid, _ in claims:
        decisions = []
        for rank, d in enumerate(candidates.get(cid, []), 1):
            sp = scored[(cid, d)]
            r = 1 if oracle else rank
            decisions.append(DocDecision(d, r, rule.probs(doc_features(sp, r))[0], sp))
        out[cid] = decisions
    return out


def to_predictions(decisions: Mapping[int, list[DocDecision]], claim_ids: Sequence[int]) -> list[sf.ClaimPrediction]:
    preds = []
    for cid in claim_ids:
        ev = {}
        for dd in decisions.get(cid, []):
            if dd.label != "NEI":
                ev[str(dd.doc_id)] = sf.AbstractPrediction(label=dd.label, sentences=dd.rationale(),
                                                           confidence=round(float(dd.probs.max()), 6))
        preds.append(sf.ClaimPrediction(id=cid, evidence=ev))
    return preds


def doc_gold(gold_row: Mapping, doc_id: int) -> int:
    ev = gold_row.get("evidence", {}).get(str(doc_id))
    return DOC_LABELS.index(ev[0]["label"]) if ev else 2


def decision_calibration(decisions: Mapping[int, list[DocDecision]], gold: Mapping[int, Mapping]) -> dict[str, Any]:
    """ECE / Brier of the abstract-level 3-way probabilities over all candidate abstracts."""
    from claimscope.verify.calibrate import calibration_metrics, reliability, top_label

    probs, ys = [], []
    for cid, dds in decisions.items():
        for dd in dds:
            probs.append(dd.probs)
            ys.append(doc_gold(gold[cid], dd.doc_id))
    p = np.asarray(probs).reshape(-1, 3)
    y = np.asarray(ys, dtype=int)
    conf, ok = top_label(p, y)
    return calibration_metrics(p, y) | {"reliability": reliability(conf, ok)}


@dataclass
class SciFactRun:
    predictions: list[sf.ClaimPrediction]
    decisions: dict[int, list[DocDecision]]
    seconds: float


def predict(claims: Sequence[Mapping], corpus: Mapping[int, Mapping], scorer: StanceScorer, *,
            retriever: DocRetriever | None = None, oracle: bool = False, top_docs: int = 3,
            rule: AbstractRule | None = None, batch_claims: int = 64) -> SciFactRun:
    """Predictions for SciFact claim rows (``{id, claim, cited_doc_ids?}``)."""
    from rich.progress import Progress

    rule = rule or AbstractRule.for_scorer(scorer)
    t0 = time.perf_counter()
    ids = [int(c["id"]) for c in claims]
    decisions: dict[int, list[DocDecision]] = {}
    with Progress(transient=True, disable=not logger.isEnabledFor(logging.INFO)) as bar:
        task = bar.add_task("scoring claims", total=len(claims))
        for s in range(0, len(claims), batch_claims):
            chunk = claims[s : s + batch_claims]
            texts = [(int(c["id"]), c["claim"]) for c in chunk]
            if oracle:
                cand = {int(c["id"]): [int(d) for d in c.get("cited_doc_ids", []) if int(d) in corpus] for c in chunk}
            else:
                if retriever is None:
                    raise BadRule("predict", "open retrieval needs a DocRetriever")
                ranked = retriever.search([c["claim"] for c in chunk], top_docs)
                cand = {int(c["id"]): r for c, r in zip(chunk, ranked, strict=True)}
            decisions |= decide(texts, cand, corpus, scorer, rule, oracle=oracle)
            bar.advance(task, len(chunk))
    return SciFactRun(to_predictions(decisions, ids), decisions, time.perf_counter() - t0)


def fit_rule_on_train(claims: Sequence[Mapping], corpus: Mapping[int, Mapping], scorer: StanceScorer,
                      retriever: DocRetriever, top_docs: int = 3) -> AbstractRule:
    """Fit the abstract rule on train claims (those held out from stance training): cited + retrieved abstracts."""
    texts = [(int(c["id"]), c["claim"]) for c in claims]
    ranked = retriever.search([c["claim"] for c in claims], top_docs)
    by_id = {int(c["id"]): c for c in claims}
    feats, labels = [], []
    for oracle in (True, False):
        cand = {}
        for c, r in zip(claims, ranked, strict=True):
            cand[int(c["id"])] = [int(d) for d in c["cited_doc_ids"] if int(d) in corpus] if oracle else r
        for cid, dds in decide(texts, cand, corpus, scorer, AbstractRule.default(), oracle=oracle).items():
            row = by_id[cid]
            for dd in dds:
                feats.append(doc_features(dd.sentence_probs, dd.rank))
                labels.append(doc_gold(row, dd.doc_id))
    rule = fit_rule(np.asarray(feats), labels)
    rule.meta |= {"claims": len(claims), "stance_model": scorer.info.name, "stance_sha256": scorer.info.sha256}
    return rule


def holdout_claims(scifact_dir: Path, adapter_dir: Path) -> list[dict]:
    """SciFact train claims that the stance adapter did not train on (ids from its training.json)."""
    rows = sf.read_jsonl_rows(Path(scifact_dir) / "claims_train.jsonl")
    record = json.loads((Path(adapter_dir) / "training.json").read_text(encoding="utf-8"))
    ids = record["data"].get("holdout_claim_ids")
    if ids is None:  # older records: recompute the split the trainer made (seeded shuffle of the sorted ids)
        import random

        order = sorted(int(r["id"]) for r in rows)
        random.Random(record["seed"]).shuffle(order)
        ids = order[: int(round(len(order) * record["hyper"]["holdout_frac"]))]
    keep = set(ids)
    return [r for r in rows if int(r["id"]) in keep]


def main(argv: Sequence[str] | None = None) -> int:
    """Fit the abstract rule for the bundled scorer: ``python -m claimscope.verify.scifact_pipeline --scifact DIR``."""
    import argparse

    from claimscope.verify.stance import BUNDLED_ADAPTER, load_scorer

    ap = argparse.ArgumentParser(description="fit the SciFact abstract-level rule on held-out SciFact train claims")
    ap.add_argument("--scifact", type=Path, required=True)
    ap.add_argument("--out", type=Path, default=RULE_PATH)
    ap.add_argument("--top-docs", type=int, default=3)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    corpus = sf.read_corpus(args.scifact / "corpus.jsonl")
    claims = holdout_claims(args.scifact, BUNDLED_ADAPTER)
    scorer = load_scorer("bundled")
    rule = fit_rule_on_train(claims, corpus, scorer, DocRetriever(scifact_index(corpus)), args.top_docs)
    rule.save(args.out)
    print(json.dumps(rule.meta))
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
