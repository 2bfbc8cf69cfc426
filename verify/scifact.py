"""SciFact I/O and the official metric rules.

Readers turn SciFact JSONL into claimscope types; the writer produces the official prediction format
``{"id", "evidence": {doc_id: {"label", "sentences", "confidence"}}}`` so the SciFact scorer runs on it unchanged; the
metrics follow the SciFact scorer (doc/evaluation.md): abstract label-only, abstract label+rationale (first 3 predicted
sentences, or the shortest gold rationale if longer), sentence selection, sentence selection+label, each P/R/F1, as flat
prefixed keys (``abstract_label_only_f1`` ...), plus retrieval recall@k.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from claimscope.errors import ClaimscopeError
from claimscope.rundir import atomic_write_text
from claimscope.types import Claim, Label, Model, PaperRef, Passage

ALLOWED = ("SUPPORT", "CONTRADICT")
MAX_ABSTRACT_SENTS = 3
TO_LABEL = {"SUPPORT": Label.SUPPORTED, "CONTRADICT": Label.CONTRADICTED}
FROM_LABEL = {Label.SUPPORTED: "SUPPORT", Label.CONTRADICTED: "CONTRADICT"}


class BadSciFactFile(ClaimscopeError):
    pass


# ------------------------------------------------------------------------------------------------------- reading


def read_numbered_rows(path: Path) -> list[tuple[int, Any]]:
    """(line number, row) of each non-blank line, so a row's problem can name its line."""
    path = Path(path)
    if not path.exists():
        raise BadSciFactFile(str(path), "file not found")
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                rows.append((n, json.loads(line)))
            except json.JSONDecodeError as e:
                raise BadSciFactFile(f"{path}:{n}", f"not JSON: {e.msg}") from e
    return rows


def read_jsonl_rows(path: Path) -> list[dict]:
    return [row for _, row in read_numbered_rows(path)]


def no_repeated_ids(path: Path, numbered: list[tuple[int, dict]]) -> None:
    """BadSciFactFile at the line of a claim id seen on an earlier line."""
    seen: dict[int, int] = {}
    for n, row in numbered:
        cid = int(row["id"])
        if seen.setdefault(cid, n) != n:
            raise BadSciFactFile(f"{path}:{n}", f"claim {cid} again (first on line {seen[cid]})")


def paper_key(doc_id: int | str) -> str:
    return f"scifact:{doc_id}"


def doc_id_of(passage: Passage) -> int:
    """The SciFact doc id of a passage made by `corpus_passages`."""
    return int(passage.paper.split(":", 1)[1])


def sentence_index(passage: Passage) -> int:
    """The 0-based abstract sentence index of a passage made by `corpus_passages` (section "s<i>")."""
    if not passage.section or not passage.section.startswith("s"):
        raise BadSciFactFile(passage.id, "passage has no SciFact sentence index")
    return int(passage.section[1:])


def read_corpus(path: Path) -> dict[int, dict]:
    """doc_id -> corpus row ``{doc_id, title, abstract: [sentences], structured}``."""
    out: dict[int, dict] = {}
    for n, row in read_numbered_rows(path):
        try:
            out[int(row["doc_id"])] = {"doc_id": int(row["doc_id"]), "title": str(row.get("title", "")),
                                       "abstract": [str(s) for s in row["abstract"]],
                                       "structured": bool(row.get("structured", False))}
        except KeyError as e:
            raise BadSciFactFile(f"{path}:{n}", f"not a SciFact corpus row: missing field {e}") from e
        except (TypeError, ValueError) as e:
            raise BadSciFactFile(f"{path}:{n}", f"not a SciFact corpus row: {e}") from e
    return out


def read_claim_rows(path: Path) -> list[dict]:
    """SciFact claim rows ``{id, claim, cited_doc_ids?, evidence?}`` as read, each checked; errors name file:line."""
    numbered = read_numbered_rows(path)
    for n, row in numbered:
        missing = [f for f in ("id", "claim") if not isinstance(row, dict) or f not in row]
        if missing:
            raise BadSciFactFile(f"{path}:{n}", f"not a SciFact claim row: missing field {missing[0]!r}")
        try:
            int(row["id"])
            [int(d) for d in row.get("cited_doc_ids", [])]
        except (TypeError, ValueError) as e:
            raise BadSciFactFile(f"{path}:{n}", f"not a SciFact claim row: {e}") from e
        if not isinstance(row["claim"], str):
            raise BadSciFactFile(f"{path}:{n}", "not a SciFact claim row: 'claim' is not text")
    no_repeated_ids(path, numbered)
    return [row for _, row in numbered]


def doc_passages(doc: Mapping) -> list[Passage]:
    """One Passage per abstract sentence; spans index the abstract joined by single spaces; section = "s<i>"."""
    out = []
    pos = 0
    for i, sent in enumerate(doc["abstract"]):
        out.append(Passage(paper=paper_key(doc["doc_id"]), page=1, section=f"s{i}", start=pos, end=pos + len(sent),
                           text=sent))
        pos += len(sent) + 1
    return out


def abstract_text(doc: Mapping) -> str:
    return " ".join(doc["abstract"])


def corpus_passages(corpus: Mapping[int, Mapping]) -> list[Passage]:
    return [p for doc in corpus.values() for p in doc_passages(doc)]


def gold_label(row: Mapping) -> str:
    """SUPPORTED / CONTRADICTED / NOT_ENOUGH_INFO for a claim row (the label of its first evidence set)."""
    for sets in row.get("evidence", {}).values():
        for s in sets:
            return TO_LABEL[s["label"]].value
    return Label.NOT_ENOUGH_INFO.value


def read_claims(path: Path) -> list[Claim]:
    """SciFact claims as Claims: id = the SciFact id, cited = the cited doc ids as ``scifact:<doc_id>``."""
    path = Path(path)
    out = []
    for n, row in enumerate(read_jsonl_rows(path), 1):
        try:
            out.append(Claim(id=str(row["id"]), text=row["claim"], source=f"{path.name}:{n}",
                             cited=[PaperRef(local_name=paper_key(d)) for d in row.get("cited_doc_ids", [])],
                             gold_label=gold_label(row) if "evidence" in row else None))
        except (KeyError, TypeError, ValueError) as e:
            raise BadSciFactFile(f"{path}:{n}", f"not a SciFact claim row: {e}") from e
    return out


def cited_doc_ids(claim: Claim) -> list[int]:
    return [int(r.local_name.split(":", 1)[1]) for r in claim.cited
            if r.local_name and r.local_name.startswith("scifact:")]


# ------------------------------------------------------------------------------------------------------- writing


class AbstractPrediction(Model):
    label: Literal["SUPPORT", "CONTRADICT"]
    sentences: list[int] = Field(default_factory=list, description="predicted rationale sentences, best first")
    confidence: float | None = Field(None, ge=0.0, le=1.0, description="probability that the label is right")


class ClaimPrediction(Model):
    id: int
    evidence: dict[str, AbstractPrediction] = Field(default_factory=dict, description="doc_id (as text) -> prediction")


def write_predictions(path: Path, preds: Iterable[ClaimPrediction]) -> None:
    """The official SciFact prediction JSONL (one claim per line), written atomically."""
    lines = [json.dumps(p.model_dump(exclude_none=True)) + "\n" for p in preds]
    atomic_write_text(Path(path), "".join(lines))


def _is_int(value: object) -> bool:
    try:
        return not isinstance(value, bool | float) and int(str(value)) is not None
    except ValueError:
        return False


def read_predictions(path: Path) -> list[dict]:
    """Prediction rows ``{id, evidence: {doc_id: {label, sentences}}}``, each checked; errors name file:line."""
    numbered = _evidence_rows(path, "a prediction")
    for n, r in numbered:
        for doc_id, dp in r.get("evidence", {}).items():
            if isinstance(dp, list):
                raise BadSciFactFile(f"{path}:{n}", f"doc {doc_id} holds a list of rationale sets, as a gold claims "
                                                    "file does; predictions give {label, sentences} per doc")
            if not isinstance(dp, dict) or dp.get("label") not in ALLOWED:
                label = dp.get("label") if isinstance(dp, dict) else dp
                raise BadSciFactFile(f"{path}:{n}", f"doc {doc_id}: label {label!r} is not SUPPORT/CONTRADICT")
            if not isinstance(dp.get("sentences", []), list):
                raise BadSciFactFile(f"{path}:{n}", f"doc {doc_id}: sentences must be a list of sentence indices")
    return [r for _, r in numbered]


def _evidence_rows(path: Path, what: str) -> list[tuple[int, dict]]:
    """Numbered rows that each have a whole-number id and an evidence object, no id twice (predictions, gold)."""
    numbered = read_numbered_rows(path)
    for n, r in numbered:
        if not isinstance(r, dict) or "id" not in r or not isinstance(r.get("evidence", {}), dict):
            raise BadSciFactFile(f"{path}:{n}", f"{what} needs an id and an evidence object")
        if not _is_int(r["id"]):
            raise BadSciFactFile(f"{path}:{n}", f"claim id {r['id']!r} is not a whole number")
    no_repeated_ids(path, numbered)
    return numbered


def read_gold(path: Path) -> list[dict]:
    """Gold claim rows ``{id, evidence: {doc_id: [{sentences, label}]}}``, each checked; errors name file:line."""
    numbered = _evidence_rows(path, "a gold claim")
    for n, r in numbered:
        for doc_id, sets in r.get("evidence", {}).items():
            if isinstance(sets, dict):
                raise BadSciFactFile(f"{path}:{n}", f"doc {doc_id} holds one {{label, sentences}} object, as a "
                                                    "predictions file does; gold gives a list of rationale sets")
            if not isinstance(sets, list) or not all(isinstance(x, dict) and x.get("label") in ALLOWED
                                                     for x in sets):
                raise BadSciFactFile(f"{path}:{n}", f"doc {doc_id}: not a list of SUPPORT/CONTRADICT rationale sets")
    return [r for _, r in numbered]


# ------------------------------------------------------------------------------------------------------- metrics


def _prf(relevant: int, retrieved: int, correct: int, name: str) -> dict[str, float]:
    p = correct / retrieved if retrieved else 0.0
    r = correct / relevant if relevant else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return {f"{name}_precision": p, f"{name}_recall": r, f"{name}_f1": f}


def _unify_gold(row: Mapping) -> dict[str, dict]:
    out = {}
    for doc, sets in row.get("evidence", {}).items():
        labels = {s["label"] for s in sets}
        if len(labels) > 1:
            raise BadSciFactFile(f"claim {row.get('id')}", f"conflicting gold labels in doc {doc}")
        out[str(doc)] = {"label": labels.pop(), "rationales": [set(int(i) for i in s["sentences"]) for s in sets]}
    return out


def scifact_metrics(gold: Sequence[Mapping], pred: Sequence[Mapping]) -> dict[str, float]:
    """Official SciFact scores. Claims missing from `pred` count as predicting no evidence.

    Returns flat keys ``abstract_label_only_{precision,recall,f1}``, ``abstract_rationalized_*``,
    ``sentence_selection_*``, ``sentence_label_*`` and the raw counts.
    """
    by_id = {int(p["id"]): p for p in pred}
    unknown = set(by_id) - {int(g["id"]) for g in gold}
    if unknown:
        raise BadSciFactFile("predictions", f"claim ids not in the gold file: {sorted(unknown)[:5]}")
    ca = {"relevant": 0, "retrieved": 0, "label_only": 0, "rationalized": 0}
    cs = {"relevant": 0, "retrieved": 0, "selection": 0, "label": 0}
    for g in gold:
        gev = _unify_gold(g)
        ca["relevant"] += len(gev)
        cs["relevant"] += sum(len(r) for d in gev.values() for r in d["rationales"])
        for doc_id, dp in by_id.get(int(g["id"]), {"evidence": {}})["evidence"].items():
            if dp["label"] not in ALLOWED:
                raise BadSciFactFile(f"claim {g['id']} doc {doc_id}",
                                     f"label {dp['label']!r} is not SUPPORT/CONTRADICT")
            sents = [int(s) for s in dp.get("sentences", [])]
            ca["retrieved"] += 1
            cs["retrieved"] += len(sents)
            gd = gev.get(str(doc_id))
            if gd is None:
                continue
            # abstract level
            if dp["label"] == gd["label"]:
                ca["label_only"] += 1
                keep = max(MAX_ABSTRACT_SENTS, min(len(r) for r in gd["rationales"]))
                first = set(sents[:keep])
                if any(r <= first for r in gd["rationales"]):
                    ca["rationalized"] += 1
            # sentence level: a sentence counts when its whole gold rationale was predicted
            predicted = set(sents)
            n_correct = 0
            for ix in predicted:
                owner = [r for r in gd["rationales"] if ix in r]
                if owner and owner[0] <= predicted:
                    n_correct += 1
            cs["selection"] += n_correct
            if dp["label"] == gd["label"]:
                cs["label"] += n_correct
    out: dict[str, float] = {}
    out |= _prf(ca["relevant"], ca["retrieved"], ca["label_only"], "abstract_label_only")
    out |= _prf(ca["relevant"], ca["retrieved"], ca["rationalized"], "abstract_rationalized")
    out |= _prf(cs["relevant"], cs["retrieved"], cs["selection"], "sentence_selection")
    out |= _prf(cs["relevant"], cs["retrieved"], cs["label"], "sentence_label")
    out |= {f"count_abstract_{k}": float(v) for k, v in ca.items()} | {f"count_sentence_{k}": float(v)
                                                                      for k, v in cs.items()}
    return out


def retrieval_recall(gold: Sequence[Mapping], ranked: Mapping[int, Sequence[int]], ks: Sequence[int] = (1, 3, 5, 10),
                     ) -> dict[str, float]:
    """Share of gold evidence abstracts (claims with evidence only) found in each claim's top-k retrieved doc ids.

    Keys ``retrieval_recall@k`` (over abstracts), ``retrieval_claim_recall@k`` (all of a claim's abstracts found) and
    ``retrieval_claim_any@k`` (at least one of them found).
    """
    out: dict[str, float] = {}
    rows = [g for g in gold if g.get("evidence")]
    for k in ks:
        found = total = full = anyhit = 0
        for g in rows:
            want = {int(d) for d in g["evidence"]}
            got = set(list(ranked.get(int(g["id"]), []))[:k])
            found += len(want & got)
            total += len(want)
            full += want <= got
            anyhit += bool(want & got)
        out[f"retrieval_recall@{k}"] = found / total if total else 0.0
        out[f"retrieval_claim_recall@{k}"] = full / len(rows) if rows else 0.0
        out[f"retrieval_claim_any@{k}"] = anyhit / len(rows) if rows else 0.0
    return out


def always_support_predictions(gold: Sequence[Mapping], docs: Mapping[int, Sequence[int]], top: int = 1
                               ) -> list[dict]:
    """The no-model floor: SUPPORT for the first `top` doc ids given per claim (no sentences)."""
    return [{"id": int(g["id"]), "evidence": {str(d): {"label": "SUPPORT", "sentences": []}
                                              for d in list(docs.get(int(g["id"]), []))[:top]}} for g in gold]
