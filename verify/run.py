"""The verify stage: claims + passages → evidence search → stance → numbers → verdicts."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from claimscope.settings import VerifySettings
from claimscope.types import Claim, Evidence, Paper, Passage, Verdict
from claimscope.verify.aggregate import Aggregator, ScoredHit, claim_coverage, decide, relevance_from_cosine
from claimscope.verify.index import EvidenceIndex, Hit

logger = logging.getLogger(__name__)

STANCES = ("support", "contradict", "neutral")


class Verifier:
    """Holds the loaded index, stance scorer and aggregator; `verify(claims)` gives one verdict per claim."""

    def __init__(self, index: EvidenceIndex, papers: Sequence[Paper], settings: VerifySettings) -> None:
        from claimscope.verify.stance import load_scorer

        self.index = index
        if isinstance(index, EvidenceIndex):  # the open-claim document ranking's query-side adapter switch
            index.query_adapter = settings.query_adapter
        self.papers = {p.ref.key: p for p in papers if not p.secondary}
        self._keys_by_id: dict[str, set[str]] = {}  # arXiv id or local name -> keys of its held versions
        for key, p in self.papers.items():
            self._keys_by_id.setdefault(str(p.ref.arxiv_id or p.ref.local_name), set()).add(key)
        self.settings = settings
        self.scorer = load_scorer(settings.stance_model, precision=settings.stance_precision)
        self.aggregator = Aggregator.load()

    @classmethod
    def from_passages(cls, passages: list[Passage], papers: Sequence[Paper], settings: VerifySettings,
                      index_dir: Path) -> Verifier:
        usable = {p.ref.key for p in papers if not p.secondary}
        evidence_passages = [p for p in passages if p.paper in usable]
        index = EvidenceIndex.load_or_build(index_dir, evidence_passages, settings.embedding_model,
                                            batch_size=settings.batch_size, max_passages=settings.max_passages,
                                            precision=settings.embed_precision)
        index.search_quotable_only()
        return cls(index, papers, settings)

    @property
    def model_name(self) -> str:
        return f"{self.scorer.info.name} + {self.aggregator.source}"

    def allowed_papers(self, claim: Claim) -> set[str] | None:
        """Paper keys a claim is checked against: every held version of every paper it cites."""
        ids = {r.arxiv_id for r in claim.cited if r.arxiv_id} | {r.local_name for r in claim.cited if r.local_name}
        keys = set().union(*(self._keys_by_id.get(i, set()) for i in ids))
        return keys or None

    def score_hits(self, claims: Sequence[Claim]) -> list[tuple[Claim, str, set[str] | None, list[ScoredHit]]]:
        """Search, stance-score and number-check evidence for every claim (and the full sentence of a cut one)."""
        from claimscope.verify.numbers import check_numbers

        texts, owners, allowed = [], [], []
        for c in claims:
            keys = self.allowed_papers(c)
            for text in [c.text] + ([c.full_text] if c.full_text and c.full_text != c.text else []):
                texts.append(text)
                owners.append(c)
                allowed.append(keys)
        # every held version of every cited paper is searched on its own, so each version shows its best passages
        queries, query_of, restrict = [], [], []
        for i, (text, keys) in enumerate(zip(texts, allowed, strict=True)):
            for key in sorted(keys) if keys else [None]:
                queries.append(text)
                query_of.append(i)
                restrict.append({key} if key else None)
        found = self.index.search_many(queries, self.settings.top_k, allowed=restrict, rrf_k=self.settings.rrf_k)
        all_hits: list[list[Hit]] = [[] for _ in texts]
        for i, hits in zip(query_of, found, strict=True):
            all_hits[i].extend(hits)
        pairs = [(text, h.passage.text) for text, hits in zip(texts, all_hits, strict=True) for h in hits]
        stance = self.scorer.score(pairs) if pairs else []
        out = []
        pos = 0
        for text, claim, keys, hits in zip(texts, owners, allowed, all_hits, strict=True):
            scored = []
            for rank, hit in enumerate(hits, 1):
                p_sup, p_con, p_neu = (float(x) for x in stance[pos])
                pos += 1
                scored.append(self._scored(hit, rank, p_sup, p_con, p_neu, text, check_numbers))
            out.append((claim, text, keys, scored))
        return out

    def verify(self, claims: Sequence[Claim]) -> list[Verdict]:
        verdicts: dict[tuple[str, str], Verdict] = {}
        for claim, text, keys, scored in self.score_hits(claims):
            sub = claim if text == claim.text else claim.model_copy(update={"text": text, "truncated": False})
            verdict = decide(sub, scored, self.papers, self.aggregator, model_name=self.model_name)
            if keys is None:
                verdict.scope = "open" if scored else "none"
                why = ("none of the cited papers is available; searched all papers held" if claim.cited
                       else "the claim names no paper; searched every paper held")
                verdict.checks.warnings.insert(0, why)
            verdicts[(claim.id, text)] = verdict
        out = []
        for c in claims:
            v = verdicts[(c.id, c.text)]
            if c.full_text and c.full_text != c.text:
                v.full_text_verdict = verdicts[(c.id, c.full_text)]
            out.append(v)
        return out

    def _scored(self, hit: Hit, rank: int, p_sup: float, p_con: float, p_neu: float, claim_text: str,
                check_numbers) -> ScoredHit:
        passage = hit.passage
        numbers = check_numbers(claim_text, [passage.text])
        stance = STANCES[max(range(3), key=lambda i: (p_sup, p_con, p_neu)[i])]
        evidence = Evidence(passage_id=passage.id, quote=passage.text, paper=passage.paper, page=passage.page,
                            section=passage.section, retrieval_score=round(hit.score, 6), rank=rank, stance=stance,
                            p_support=round(p_sup, 4), p_contradict=round(p_con, 4), p_neutral=round(p_neu, 4))
        return ScoredHit(evidence=evidence, relevance=relevance_from_cosine(hit.dense_score), numbers=numbers,
                         text=passage.text, coverage=claim_coverage(claim_text, passage.text))
