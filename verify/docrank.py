"""Document-level ranking for open claims: which papers (or parts of a long paper) to read first.

Ranking sentence windows directly and crediting a paper with its best window loses to ranking whole documents
(SciFact train, recall@3 of gold abstracts: sentence index .80, stemmed BM25 over whole abstracts .82, the fusion below
.88). So an open claim is searched in two steps (`EvidenceIndex.search_many`): documents first, by this module, then
the sentence windows inside the best documents, for the quotes.

A document unit is a paper, or for a long paper (more than `unit_chars` characters of text) a run of its passages:
one section, or without sections a group of `pages_per_unit` pages. Its lexical text is its passages merged by span
(overlapping windows counted once), with the paper's title in front when titles are known. Its score is a weighted sum
of per-query standardised (z-scored over all units) signals: stemmed BM25 of the unit text, the dense cosine of the
best passage, the sum of the two best passages' cosines, and the cosine of the title. The weights were chosen on
SciFact **train** (`benchmarks/verify_scifact.py` reports dev). With the bundled MiniLM, the claim vector of this
ranking goes through the query-side adapter first (`verify.query_adapter`, trained on SciFact train against the frozen
corpus vectors) and the fusion takes the weights chosen for adapted vectors (out of fold on train).

Alternatives that did not beat this fusion on 5-fold train CV (so none is used): other BM25 parameters, learned
listwise fusion of up to 15 signals, dense PRF, RM3 (benchmarks/results/docrank_cv.txt), and re-ranking the top 2-8
abstracts by the stance model's evidence signal, 1 - P(NEUTRAL) of their best sentences
(benchmarks/results/docrank_rerank.txt: train CV recall@3 0.922 vs 0.924; alone it orders gold above the other top-3
candidates in at most 0.83 of pairs, the fusion in 0.94).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from claimscope.types import Passage


@dataclass(frozen=True)
class DocParams:
    """Fusion weights and BM25 parameters of the document ranking (chosen on SciFact train)."""

    k1: float = 1.5
    b: float = 0.75
    w_bm25: float = 1.0
    w_max: float = 1.5  # best passage cosine
    w_top2: float = 0.5  # sum of the two best passage cosines
    w_title: float = 0.5  # title cosine (only where titles are known)
    unit_chars: int = 12000  # a paper with at most this much text is one unit (SciFact abstracts: at most 10000)
    min_unit_chars: int = 2000  # a part of a long paper shorter than this is joined to the next one
    pages_per_unit: int = 2  # pages per unit of a long paper without section names


@dataclass
class DocUnit:
    """A paper, or a section / page group of a long paper: the thing ranked before its sentences are."""

    key: str  # the paper key, or "<paper>#<n>" for a part of a long paper
    paper: str
    rows: np.ndarray  # indices of its passages in the index, in reading order
    text: str
    label: str = ""  # "" for a whole paper, else the section name or "pp. a-b"


@dataclass
class DocHit:
    unit: DocUnit
    rank: int  # 1-based
    score: float  # fused standardised score
    bm25: float
    dense_max: float


def merged_text(passages: Sequence[Passage]) -> str:
    """The passages' text with overlapping windows counted once (spans index the page text)."""
    parts: list[str] = []
    page, end = None, -1
    for p in sorted(passages, key=lambda p: (p.page, p.start, p.end)):
        if p.page == page and p.start < end:
            if p.end > end:
                parts.append(p.text[end - p.start:])
                end = p.end
            continue
        parts.append(p.text)
        page, end = p.page, p.end
    return " ".join(s.strip() for s in parts if s.strip())


def doc_units(passages: Sequence[Passage], params: DocParams = DocParams()) -> list[DocUnit]:
    """Units in order of each paper's first passage; a long paper split by section, else by page group."""
    by_paper: dict[str, list[int]] = {}
    for i, p in enumerate(passages):
        by_paper.setdefault(p.paper, []).append(i)
    units: list[DocUnit] = []
    for paper, rows in by_paper.items():
        rows = sorted(rows, key=lambda i: (passages[i].page, passages[i].start, passages[i].end))
        text = merged_text([passages[i] for i in rows])
        if len(text) <= params.unit_chars:
            units.append(DocUnit(paper, paper, np.asarray(rows, dtype=np.int64), text))
            continue
        for n, (label, part) in enumerate(_split(passages, rows, params)):
            units.append(DocUnit(f"{paper}#{n}", paper, np.asarray(part, dtype=np.int64),
                                 merged_text([passages[i] for i in part]), label))
    return units


def _split(passages: Sequence[Passage], rows: list[int], params: DocParams) -> list[tuple[str, list[int]]]:
    """Runs of consecutive passages with one section name (passages without one grouped by pages); while a unit's
    passages hold fewer than `min_unit_chars` characters the next run joins it, so short sections (or one-sentence
    "sections") never make many tiny units."""
    runs: list[tuple[str, list[int]]] = []
    for i in rows:
        p = passages[i]
        label = p.section or _pages_label(p.page, params.pages_per_unit)
        if runs and runs[-1][0] == label:
            runs[-1][1].append(i)
        else:
            runs.append((label, [i]))
    out: list[tuple[str, list[int]]] = []
    size = 0
    for label, part in runs:
        if out and size < params.min_unit_chars:
            out[-1][1].extend(part)
        else:
            out.append((label, list(part)))
            size = 0
        size += sum(len(passages[i].text) for i in part)
    return out


def _pages_label(page: int, per: int) -> str:
    first = (page - 1) // per * per + 1
    return f"pp. {first}-{first + per - 1}" if per > 1 else f"p. {page}"


@dataclass
class DocRanker:
    """Scores every unit for a batch of queries; built from the index's passages and passage embeddings."""

    units: list[DocUnit]
    embeddings: np.ndarray  # passage embeddings, rows as in the index
    params: DocParams = DocParams()
    titles: Mapping[str, str] = field(default_factory=dict)
    title_embeddings: np.ndarray | None = None  # one row per unit (its paper's title), or None
    _bm25: Any = None
    _order: np.ndarray | None = None
    _starts: np.ndarray | None = None
    _unit_emb: np.ndarray | None = None

    @classmethod
    def build(cls, passages: Sequence[Passage], embeddings: np.ndarray, *, params: DocParams = DocParams(),
              titles: Mapping[str, str] | None = None, title_embeddings: np.ndarray | None = None) -> DocRanker:
        units = doc_units(passages, params)
        return cls(units, embeddings, params, dict(titles or {}), title_embeddings)

    def unit_titles(self) -> list[str]:
        return [self.titles.get(u.paper, "") for u in self.units]

    def _lexical(self) -> Any:
        if self._bm25 is None:
            import bm25s

            from claimscope.verify.index import _tokenize

            texts = [(t + " " + u.text) if t else u.text for t, u in zip(self.unit_titles(), self.units, strict=True)]
            self._bm25 = bm25s.BM25(k1=self.params.k1, b=self.params.b)
            self._bm25.index(_tokenize(texts), show_progress=False)
        return self._bm25

    def bm25_scores(self, queries: Sequence[str]) -> np.ndarray:
        """(n_queries, n_units) stemmed BM25 of each unit's text (title in front)."""
        from claimscope.verify.index import _tokenize

        out = np.zeros((len(queries), len(self.units)), dtype=np.float32)
        if not self.units or not queries:
            return out
        bm25 = self._lexical()
        q = _tokenize(queries)
        inv = {v: k for k, v in q.vocab.items()}
        for i, ids in enumerate(q.ids):
            tokens = [inv[t] for t in ids]
            if tokens:
                out[i] = bm25.get_scores(tokens)
        return out

    def dense_scores(self, q_emb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(best passage cosine, second-best passage cosine) per query and unit; a one-passage unit repeats its best."""
        if self._order is None:
            order = np.concatenate([u.rows for u in self.units]) if self.units else np.zeros(0, np.int64)
            sizes = np.array([len(u.rows) for u in self.units], dtype=np.int64)
            self._starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
            # passages of a paper are normally stored together, so the unit order is the index order: no copy
            same = len(order) == len(self.embeddings) and bool(np.all(order == np.arange(len(order))))
            self._order = order
            self._unit_emb = self.embeddings if same else self.embeddings[order]
        assert self._starts is not None and self._unit_emb is not None
        n_q = len(q_emb)
        best = np.zeros((n_q, len(self.units)), dtype=np.float32)
        second = np.zeros_like(best)
        for s in range(0, n_q, 64):  # (64, n_passages) blocks keep memory small
            best[s: s + 64], second[s: s + 64] = top_two(q_emb[s: s + 64] @ self._unit_emb.T, self._starts)
        return best, second

    def scores(self, queries: Sequence[str], q_emb: np.ndarray | None, *, dense: bool = True,
               params: DocParams | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(fused score, BM25, best passage cosine), each (n_queries, n_units). Without `dense`, BM25 alone.
        `params` overrides the fusion weights (the query adapter's own, `verify.query_adapter`)."""
        lexical = self.bm25_scores(queries)
        if not dense or q_emb is None or not len(self.embeddings):
            return lexical, lexical, np.zeros_like(lexical)
        p = params or self.params
        best, second = self.dense_scores(q_emb)
        title = None
        if p.w_title and self.title_embeddings is not None and len(self.title_embeddings) == len(self.units):
            title = q_emb @ self.title_embeddings.T
        return fuse_signals(p, lexical, best, second, title), lexical, best

    def rank(self, queries: Sequence[str], q_emb: np.ndarray | None, k: int, *, dense: bool = True,
             params: DocParams | None = None) -> list[list[DocHit]]:
        """The top-k units per query, best first."""
        if not self.units:
            return [[] for _ in queries]
        fused, lexical, best = self.scores(queries, q_emb, dense=dense, params=params)
        k = min(k, len(self.units))
        out = []
        for i in range(len(queries)):
            top = np.argpartition(-fused[i], k - 1)[:k]
            top = top[np.lexsort((top, -fused[i][top]))]
            out.append([DocHit(self.units[j], r, float(fused[i, j]), float(lexical[i, j]), float(best[i, j]))
                        for r, j in enumerate(top, 1)])
        return out


def top_two(sims: np.ndarray, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(best, second-best) of each group of columns of `sims` (n_queries, n_items); group g is the columns
    starts[g]:starts[g + 1] (contiguous, non-empty). A one-item group repeats its best as second."""
    sizes = np.diff(np.r_[starts, sims.shape[1]])
    top = np.maximum.reduceat(sims, starts, axis=1)
    masked = np.where(sims >= np.repeat(top, sizes, axis=1), -np.inf, sims)
    nxt = np.maximum.reduceat(masked, starts, axis=1)
    return top, np.where(np.isfinite(nxt), nxt, top)


def fuse_signals(p: DocParams, lexical: np.ndarray, best: np.ndarray, second: np.ndarray,
                 title: np.ndarray | None = None) -> np.ndarray:
    """The fused document score, each (n_queries, n_units) signal z-scored per query over the units: BM25, best
    passage cosine, sum of the two best, title cosine (left out when `title` is None or its weight 0)."""
    fused = p.w_bm25 * _z(lexical) + p.w_max * _z(best) + p.w_top2 * _z(best + second)
    if p.w_title and title is not None:
        fused += p.w_title * _z(title)
    return fused


def _z(x: np.ndarray) -> np.ndarray:
    """Standardise each row (query) over the units; a constant row becomes zeros."""
    x = np.asarray(x, dtype=np.float64)
    sd = x.std(axis=1, keepdims=True)
    return np.where(sd > 0, (x - x.mean(axis=1, keepdims=True)) / np.where(sd > 0, sd, 1.0), 0.0)
