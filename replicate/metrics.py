"""Metrics: accuracy, official SQuAD v1.1 EM/F1, MLQA's language-specific answer normalisation, entity F1 for
tagging, and the BUCC (F1 at a tuned similarity threshold) and Tatoeba (nearest-neighbour accuracy) retrieval scores.

All scores are percentages (0-100), as in the paper's tables.
"""

from __future__ import annotations

import re
import string
import sys
import unicodedata
from collections import Counter
from collections.abc import Sequence
from functools import lru_cache

import numpy as np


def accuracy(preds: Sequence[int], golds: Sequence[int]) -> float:
    if not golds:
        return 0.0
    return 100.0 * sum(int(p == g) for p, g in zip(preds, golds, strict=True)) / len(golds)


# --- SQuAD v1.1 (official evaluate-v1.1.py) -------------------------------------------------------------------------


def squad_normalize(s: str) -> str:
    s = s.lower()
    s = "".join(ch for ch in s if ch not in set(string.punctuation))
    s = re.sub(r"\b(a|an|the)\b", " ", s)
    return " ".join(s.split())


# --- MLQA (official mlqa_evaluation_v1.py) --------------------------------------------------------------------------

_WHITESPACE_LANGS = {"en", "es", "hi", "vi", "de", "ar"}
_MIXED_SEGMENTATION_LANGS = {"zh"}
_ARTICLES = {
    "en": r"\b(a|an|the)\b",
    "es": r"\b(un|una|unos|unas|el|la|los|las)\b",
    "vi": r"\b(của|là|cái|chiếc|những)\b",
    "de": r"\b(ein|eine|einen|einem|eines|einer|der|die|das|den|dem|des)\b",
    "ar": r"\sال^|ال",
}


@lru_cache(maxsize=1)
def _unicode_punct() -> frozenset[str]:
    chars = {chr(i) for i in range(sys.maxunicode) if unicodedata.category(chr(i)).startswith("P")}
    return frozenset(chars | set(string.punctuation))


def _mixed_segmentation(text: str) -> list[str]:
    punct = _unicode_punct()
    out: list[str] = []
    buf = ""
    for ch in text:
        if re.search(r"[\u4e00-\u9fa5]", ch) or ch in punct:
            if buf:
                out.extend(buf.split())
                buf = ""
            out.append(ch)
        else:
            buf += ch
    if buf:
        out.extend(buf.split())
    return out


def mlqa_normalize(s: str, lang: str) -> str:
    punct = _unicode_punct()
    s = "".join(ch for ch in s.lower() if ch not in punct)
    if lang in _ARTICLES:
        s = re.sub(_ARTICLES[lang], " ", s)
    tokens = _mixed_segmentation(s) if lang in _MIXED_SEGMENTATION_LANGS else s.split()
    return " ".join(t for t in tokens if t.strip())


def _normalize(s: str, lang: str, style: str) -> str:
    return mlqa_normalize(s, lang) if style == "mlqa" else squad_normalize(s)


def qa_exact(pred: str, gold: str, lang: str = "en", style: str = "squad") -> float:
    return float(_normalize(pred, lang, style) == _normalize(gold, lang, style))


def qa_f1(pred: str, gold: str, lang: str = "en", style: str = "squad") -> float:
    p = _normalize(pred, lang, style).split()
    g = _normalize(gold, lang, style).split()
    common = Counter(p) & Counter(g)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(p), same / len(g)
    return 2 * precision * recall / (precision + recall)


def qa_scores(
    preds: dict[str, str], golds: dict[str, list[str]], lang: str = "en", style: str = "squad"
) -> dict[str, float]:
    """EM and F1 (max over the gold answers, averaged over questions, in %); unanswered questions count as 0."""
    if not golds:
        return {"exact_match": 0.0, "f1": 0.0}
    em = f1 = 0.0
    for qid, answers in golds.items():
        pred = preds.get(qid, "")
        em += max(qa_exact(pred, a, lang, style) for a in answers)
        f1 += max(qa_f1(pred, a, lang, style) for a in answers)
    return {"exact_match": 100.0 * em / len(golds), "f1": 100.0 * f1 / len(golds)}


# --- tagging ---------------------------------------------------------------------------------------------------------


def _entities(tags: Sequence[str]) -> set[tuple[int, int, str]]:
    """IOB2/IOB1 spans (seqeval's default, non-strict mode)."""
    spans: set[tuple[int, int, str]] = set()
    start: int | None = None
    kind = ""  # read only while start is set
    for i, t in enumerate([*tags, "O"]):
        prefix, _, typ = t.partition("-") if "-" in t else (t, "", "")
        boundary = t == "O" or prefix == "B" or (prefix == "I" and typ != kind)
        if start is not None and boundary:
            spans.add((start, i, kind))
            start, kind = None, ""
        if prefix in ("B", "I") and start is None:
            start, kind = i, typ
    return spans


def tagging_f1(preds: Sequence[Sequence[str]], golds: Sequence[Sequence[str]]) -> float:
    """Entity-level micro F1 for IOB tags (NER); token-level micro F1 (= accuracy) for plain tags (POS, CCG)."""
    bio = any(t[:2] in ("B-", "I-") for g in golds for t in g)
    if not bio:
        flat = [(p, g) for ps, gs in zip(preds, golds, strict=True) for p, g in zip(ps, gs, strict=True)]
        return 100.0 * sum(p == g for p, g in flat) / max(1, len(flat))
    tp = n_pred = n_gold = 0
    for ps, gs in zip(preds, golds, strict=True):
        pe, ge = _entities(ps), _entities(gs)
        tp += len(pe & ge)
        n_pred += len(pe)
        n_gold += len(ge)
    if tp == 0:
        return 0.0
    p, r = tp / n_pred, tp / n_gold
    return 100.0 * 2 * p * r / (p + r)


# --- retrieval -------------------------------------------------------------------------------------------------------


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def tatoeba_accuracy(src: np.ndarray, tgt: np.ndarray) -> float:
    """Row i of `src` is the translation of row i of `tgt`: % of src rows whose cosine nearest tgt row is its own."""
    sims = _unit(src) @ _unit(tgt).T
    return 100.0 * float(np.mean(sims.argmax(1) == np.arange(len(src))))


def bucc_candidates(
    src: np.ndarray, tgt: np.ndarray, src_ids: list[str], tgt_ids: list[str]
) -> list[tuple[str, str, float]]:
    """Each source sentence's cosine nearest target sentence, with its similarity."""
    sims = _unit(src) @ _unit(tgt).T
    best = sims.argmax(1)
    return [(src_ids[i], tgt_ids[j], float(sims[i, j])) for i, j in enumerate(best)]


def bucc_f1_at(cands: list[tuple[str, str, float]], gold: set[tuple[str, str]], threshold: float) -> float:
    chosen = {(s, t) for s, t, sc in cands if sc >= threshold}
    tp = len(chosen & gold)
    if tp == 0:
        return 0.0
    p, r = tp / len(chosen), tp / len(gold)
    return 100.0 * 2 * p * r / (p + r)


def bucc_best_threshold(cands: list[tuple[str, str, float]], gold: set[tuple[str, str]]) -> tuple[float, float]:
    """The similarity cut-off with the best F1 on these candidates (BUCC protocol: tune on dev), and that F1."""
    order = sorted(cands, key=lambda c: -c[2])
    best, tp = (1.0, 0.0), 0
    for k, (s, t, sc) in enumerate(order, 1):
        tp += (s, t) in gold
        if k < len(order) and order[k][2] == sc:
            continue  # evaluate a threshold only after all candidates with the same score
        if tp and gold:
            p, r = tp / k, tp / len(gold)
            f1 = 100.0 * 2 * p * r / (p + r)
            if f1 > best[1]:
                best = (sc, f1)
    return best
