"""Hybrid evidence search: stemmed BM25 (bm25s) + dense (sentence-transformers, FAISS inner product), fused by
reciprocal rank. The index is persisted with a manifest and reused while the corpus and model are unchanged; new
passages can be added without re-embedding the old ones.

A claim restricted to papers (the ones it cites) ranks those papers' passages directly. An open claim is searched in
two steps: documents first (`verify.docrank`: whole papers, or sections / page groups of long ones; with the bundled
MiniLM the claim vector of that step goes through the query-side adapter, `verify.query_adapter`), then the sentence
windows inside the best documents, for the quotes (base claim vector).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from claimscope.errors import LimitExceeded
from claimscope.rundir import atomic_write_bytes, write_json
from claimscope.types import Passage
from claimscope.verify.docrank import DocHit, DocParams, DocRanker

if TYPE_CHECKING:
    from claimscope.verify.query_adapter import QueryAdapter

logger = logging.getLogger(__name__)

MANIFEST = "manifest.json"
EMBEDDINGS = "embeddings.npy"
FAISS_FILE = "dense.faiss"
QUERY_CACHE = 10_000  # query vectors kept per index
TITLES_FILE = "titles.npy"  # title vectors for the document ranking (a cache; rebuilt when missing)


def corpus_hash(passages: Sequence[Passage]) -> str:
    h = hashlib.sha256()
    for p in passages:
        h.update(p.id.encode())
    return h.hexdigest()


def _stemmer() -> Any:
    import Stemmer

    return Stemmer.Stemmer("english")


def _tokenize(texts: Sequence[str]) -> Any:
    import bm25s

    return bm25s.tokenize(list(texts), stopwords="en", stemmer=_stemmer(), show_progress=False)


@dataclass
class Hit:
    index: int
    passage: Passage
    score: float
    bm25_rank: int
    dense_rank: int
    dense_score: float
    doc_rank: int = 0  # open search: rank of the passage's document (0: the search was restricted to papers)
    doc_score: float = 0.0


class EvidenceIndex:
    def __init__(self, passages: list[Passage], embeddings: np.ndarray, model_name: str,
                 additions: list[dict] | None = None, precision: str = "auto", *,
                 titles: Mapping[str, str] | None = None, doc_params: DocParams | None = None,
                 query_adapter: bool | str | Path = True) -> None:
        self.passages = passages
        # the open-claim document ranking's query-side adapter: True = the shipped one (bundled MiniLM only), a
        # folder = that one, False = base query vectors (VerifySettings.query_adapter)
        self.query_adapter = query_adapter
        self.titles = dict(titles or {})  # paper key -> title, for the document ranking of open claims
        self.doc_params = doc_params or DocParams()
        self.precision = precision  # embedding inference precision (VerifySettings.embed_precision)
        self.embeddings = embeddings.astype(np.float32, copy=False)
        self.model_name = model_name
        self.additions = additions or []
        self._id_to_idx = {p.id: i for i, p in enumerate(passages)}
        self._bm25: Any = None
        self._faiss: Any = None
        self._ranker: DocRanker | None = None
        self.directory: Path | None = None  # where it is persisted (load_or_build), for the title-vector cache
        self._rows_by_paper: dict[str, np.ndarray] | None = None
        self._query_vectors: dict[str, np.ndarray] = {}
        self._quotable_only = False

    def search_quotable_only(self) -> None:
        """Restricted searches (a claim within its cited papers) skip passages that cannot be evidence: figure labels
        from a PDF's text layer and reference-list entries (`quotable`). For papers; SciFact abstracts keep every
        sentence, as the benchmark's corpus index does."""
        self._quotable_only = True
        self._rows_by_paper = None

    # ---- building -------------------------------------------------------------------------------------------
    @classmethod
    def build(cls, passages: list[Passage], model_name: str, *, batch_size: int = 32,
              max_passages: int = 2_000_000, precision: str = "auto") -> EvidenceIndex:
        passages = _unique(passages)
        if len(passages) > max_passages:
            raise LimitExceeded("index", f"{len(passages)} passages exceed verify.max_passages={max_passages}")
        t0 = time.perf_counter()
        emb = embed_texts([p.text for p in passages], model_name, batch_size=batch_size, precision=precision)
        index = cls(passages, emb, model_name, [{"added": len(passages), "at": _now(), "reason": "build"}],
                    precision=precision)
        logger.info("embedded %d passages in %.1fs", len(passages), time.perf_counter() - t0)
        return index

    def add(self, new: list[Passage], *, batch_size: int = 32, reason: str = "add") -> list[Passage]:
        """Add passages not already present; only those are embedded. Returns the ones added."""
        fresh = [p for p in _unique(new) if p.id not in self._id_to_idx]
        if not fresh:
            return []
        emb = embed_texts([p.text for p in fresh], self.model_name, batch_size=batch_size, precision=self.precision)
        start = len(self.passages)
        self.passages = self.passages + fresh
        self.embeddings = np.vstack([self.embeddings, emb]) if len(self.embeddings) else emb
        for i, p in enumerate(fresh, start):
            self._id_to_idx[p.id] = i
        self.additions.append({"added": len(fresh), "at": _now(), "reason": reason})
        self._bm25 = None
        self._faiss = None
        self._ranker = None
        self._rows_by_paper = None
        return fresh

    # ---- persistence ----------------------------------------------------------------------------------------
    def save(self, directory: Path) -> None:
        """Write into a temp folder, then swap it in, so an interrupt never leaves a half-written index."""
        directory = Path(directory)
        tmp = directory.with_name(directory.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        buf = _npy_bytes(self.embeddings)
        atomic_write_bytes(tmp / EMBEDDINGS, buf)
        import faiss

        faiss.write_index(self._dense(), str(tmp / FAISS_FILE))
        write_json(tmp / MANIFEST, {
            "model": self.model_name,
            "dims": int(self.embeddings.shape[1]) if self.embeddings.size else 0,
            "count": len(self.passages),
            "corpus_hash": corpus_hash(self.passages),
            "passage_ids": [p.id for p in self.passages],
            "additions": self.additions,
            "bm25": "bm25s, English stopwords, Snowball English stemmer (rebuilt on load)",
        })
        old = directory.with_name(directory.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        if directory.exists():
            os.replace(directory, old)
        os.replace(tmp, directory)
        shutil.rmtree(old, ignore_errors=True)

    @classmethod
    def load(cls, directory: Path, passages: Sequence[Passage]) -> EvidenceIndex | None:
        """The saved index if it matches these passages (same ids, same order prefix); None otherwise."""
        directory = Path(directory)
        try:
            manifest = json.loads((directory / MANIFEST).read_text())
            emb = np.load(directory / EMBEDDINGS)
        except (OSError, ValueError):
            return None
        by_id = {p.id: p for p in passages}
        ids = manifest.get("passage_ids", [])
        if len(ids) != len(emb) or any(i not in by_id for i in ids):
            return None
        return cls([by_id[i] for i in ids], emb, manifest["model"], manifest.get("additions", []))

    @classmethod
    def load_or_build(cls, directory: Path, passages: list[Passage], model_name: str, *,
                      batch_size: int = 32, max_passages: int = 2_000_000, precision: str = "auto") -> EvidenceIndex:
        passages = _unique(passages)
        existing = cls.load(directory, passages)
        if existing is not None and existing.model_name == model_name:
            existing.precision = precision
            existing.directory = Path(directory)
            if corpus_hash(existing.passages) == corpus_hash(passages):
                logger.info("reusing evidence index in %s (%d passages)", directory, len(passages))
                return existing
            if {p.id for p in existing.passages} <= {p.id for p in passages}:
                added = existing.add(passages, batch_size=batch_size)
                logger.info("added %d new passages to the index in %s", len(added), directory)
                existing.save(directory)
                return existing
        index = cls.build(passages, model_name, batch_size=batch_size, max_passages=max_passages, precision=precision)
        index.save(directory)
        index.directory = Path(directory)
        return index

    # ---- search ---------------------------------------------------------------------------------------------
    def _bm25_index(self) -> Any:
        if self._bm25 is None:
            import bm25s

            self._bm25 = bm25s.BM25()
            self._bm25.index(_tokenize([p.text for p in self.passages]), show_progress=False)
        return self._bm25

    def _dense(self) -> Any:
        if self._faiss is None:
            import faiss

            index = faiss.IndexFlatIP(self.embeddings.shape[1] if self.embeddings.size else 384)
            if len(self.embeddings):
                index.add(self.embeddings)
            self._faiss = index
        return self._faiss

    # ---- documents (open claims) ----------------------------------------------------------------------------
    def set_titles(self, titles: Mapping[str, str]) -> None:
        """Paper titles for the document ranking (BM25 text and a title cosine); SciFact abstracts have them apart."""
        self.titles = dict(titles)
        self._ranker = None

    def doc_ranker(self) -> DocRanker:
        if self._ranker is None:
            ranker = DocRanker.build(self.passages, self.embeddings, params=self.doc_params, titles=self.titles)
            if self.titles and self.doc_params.w_title:
                ranker.title_embeddings = self._title_embeddings(ranker.unit_titles())
            self._ranker = ranker
        return self._ranker

    def _title_embeddings(self, titles: list[str]) -> np.ndarray:
        """Title vectors, kept beside a persisted index (keyed by the model and the titles) so they are made once."""
        key = hashlib.sha256("\n".join([self.model_name, *titles]).encode()).hexdigest()
        cache = self.directory / TITLES_FILE if self.directory is not None else None
        if cache is not None and cache.with_suffix(".sha256").is_file():
            if cache.with_suffix(".sha256").read_text().strip() == key:
                try:
                    vectors = np.load(cache)
                    if len(vectors) == len(titles):
                        return vectors
                except (OSError, ValueError):
                    pass
        t0 = time.perf_counter()
        vectors = embed_texts(titles, self.model_name, precision=self.precision)
        logger.info("embedded %d titles in %.1fs", len(titles), time.perf_counter() - t0)
        if cache is not None and cache.parent.is_dir():
            atomic_write_bytes(cache, _npy_bytes(vectors))
            atomic_write_bytes(cache.with_suffix(".sha256"), key.encode())
        return vectors

    def adapter(self) -> QueryAdapter | None:
        """The query-side adapter of the document ranking in use (None: base query vectors)."""
        from claimscope.verify.query_adapter import adapter_for

        return adapter_for(self.model_name, self.query_adapter)

    def _doc_query(self, q_emb: np.ndarray | None, adapter: bool | None = None
                   ) -> tuple[np.ndarray | None, DocParams | None]:
        """The query vectors and fusion weights of the document ranking: adapted (with the adapter's weights) when an
        adapter applies and `adapter` is not False; `adapter` None follows `self.query_adapter`."""
        found = self.adapter() if adapter is not False and q_emb is not None else None
        if found is None:
            return q_emb, None
        return found.apply(q_emb), replace(self.doc_params, **found.doc_weights)

    def search_docs(self, queries: Sequence[str], k: int, *, dense: bool = True,
                    query_embeddings: np.ndarray | None = None, adapter: bool | None = None) -> list[list[DocHit]]:
        """The top-k document units per query; `dense=False` ranks by stemmed BM25 of the unit text alone;
        `adapter=False` uses the base query vectors (and weights) even where the adapter applies."""
        if dense and query_embeddings is None and queries:
            query_embeddings = self.embed_queries(queries)
        q_doc, params = self._doc_query(query_embeddings, adapter) if dense else (query_embeddings, None)
        return self.doc_ranker().rank(queries, q_doc, k, dense=dense, params=params)

    # ---- passages -------------------------------------------------------------------------------------------
    def search_many(self, queries: Sequence[str], k: int, *, allowed: Sequence[set[str] | None] | None = None,
                    rrf_k: int = 60, query_embeddings: np.ndarray | None = None, docs: int = 3) -> list[list[Hit]]:
        """Top-k fused hits per query; `allowed[i]` restricts query i to passages of those paper keys.

        An open query (`allowed[i]` None) takes the best `docs` document units first and then the best of each
        one's passages (about k / docs each, best document first).
        """
        if not self.passages:
            return [[] for _ in queries]
        q_emb = self.embed_queries(queries) if query_embeddings is None else query_embeddings
        bm25 = self._bm25_index()
        q_tokens = _tokenize(queries)
        vocab = q_tokens.vocab
        inv_vocab = {v: k_ for k_, v in vocab.items()}
        rows_of = self._paper_rows()
        lexical_of: dict[tuple[str, ...], np.ndarray] = {}  # a claim searched in several papers: BM25 once
        open_q = [i for i in range(len(queries)) if allowed is None or allowed[i] is None]
        doc_hits: dict[int, list[DocHit]] = {}
        if open_q:
            q_doc, params = self._doc_query(q_emb[open_q])
            ranked = self.doc_ranker().rank([queries[i] for i in open_q], q_doc, docs, params=params)
            doc_hits = dict(zip(open_q, ranked, strict=True))
        results = []
        for qi in range(len(queries)):
            tokens = tuple(inv_vocab[t] for t in q_tokens.ids[qi])
            if tokens not in lexical_of:
                lexical_of[tokens] = bm25.get_scores(list(tokens)) if tokens else np.zeros(len(self.passages))
            lexical = lexical_of[tokens]
            restrict = allowed[qi] if allowed is not None else None
            if restrict is None:
                results.append(self._within_docs(doc_hits[qi], lexical, q_emb[qi], k, rrf_k))
                continue
            parts = [rows_of[key] for key in restrict if key in rows_of]
            candidates = np.sort(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.int64)
            if len(candidates) == 0:
                results.append([])
                continue
            dense = np.zeros(len(self.passages), dtype=np.float32)
            dense[candidates] = self.embeddings[candidates] @ q_emb[qi]
            results.append(_fuse(self.passages, candidates, lexical, dense, k, rrf_k))
        return results

    def embed_queries(self, queries: Sequence[str]) -> np.ndarray:
        """Query vectors, each text embedded once per index (a claim is searched for documents, then passages)."""
        todo = list(dict.fromkeys(q for q in queries if q not in self._query_vectors))
        if todo:
            for q, v in zip(todo, embed_texts(todo, self.model_name, precision=self.precision), strict=True):
                self._query_vectors[q] = v
            while len(self._query_vectors) > QUERY_CACHE:
                self._query_vectors.pop(next(iter(self._query_vectors)))
        dims = self.embeddings.shape[1] if self.embeddings.ndim == 2 and self.embeddings.size else 384
        return np.array([self._query_vectors[q] for q in queries], dtype=np.float32).reshape(-1, dims)

    def forget_queries(self) -> None:
        self._query_vectors.clear()

    def _paper_rows(self) -> dict[str, np.ndarray]:
        """Each paper's passages (with `search_quotable_only`, those that can be evidence, or all where none can)."""
        if self._rows_by_paper is None:
            rows: dict[str, list[int]] = {}
            kept: dict[str, list[int]] = {}
            for i, p in enumerate(self.passages):
                rows.setdefault(p.paper, []).append(i)
                if not self._quotable_only or quotable(p):
                    kept.setdefault(p.paper, []).append(i)
            self._rows_by_paper = {k: np.asarray(kept.get(k) or v, dtype=np.int64) for k, v in rows.items()}
        return self._rows_by_paper

    def _within_docs(self, docs: list[DocHit], lexical: np.ndarray, q: np.ndarray, k: int, rrf_k: int) -> list[Hit]:
        """The best passages of each ranked document unit, about k / len(docs) each, in document order."""
        if not docs:
            return []
        per_doc = -(-k // len(docs))
        dense = np.zeros(len(self.passages), dtype=np.float32)
        out: list[Hit] = []
        for d in docs:
            rows = d.unit.rows
            dense[rows] = self.embeddings[rows] @ q
            for h in _fuse(self.passages, rows, lexical, dense, per_doc, rrf_k):
                h.doc_rank, h.doc_score = d.rank, d.score
                out.append(h)
        return out[:k]

    def search(self, query: str, k: int, *, allowed: set[str] | None = None, rrf_k: int = 60) -> list[Hit]:
        return self.search_many([query], k, allowed=[allowed], rrf_k=rrf_k)[0]


_WORD = re.compile(r"[^\W\d_]{3,}")
_REFERENCE_SECTION = re.compile(r"^\s*(\d+\s*)?(references|bibliography)\b", re.I)


def quotable(passage: Passage, min_words: int = 4) -> bool:
    """Whether a passage can be evidence for a claim: it has `min_words` words of three letters or more (not the
    labels of a figure the PDF's text layer holds, e.g. 'XLM-R OR', 'Target Task: #j EN') and is not in the
    reference list."""
    if passage.section and _REFERENCE_SECTION.match(passage.section):
        return False
    return len(_WORD.findall(passage.text)) >= min_words


def _fuse(passages: Sequence[Passage], candidates: np.ndarray, lexical: np.ndarray, dense: np.ndarray, k: int,
          rrf_k: int, pool: int | None = None) -> list[Hit]:
    """Reciprocal-rank fusion of the candidates' BM25 and dense ranks. A candidate without a lexical match ranks last
    lexically: after `pool` passages (default: the candidates; the sharded corpus index passes the corpus size, its
    candidates being only the BM25 and dense top lists)."""
    pool = len(candidates) if pool is None else pool
    lex = lexical[candidates]
    den = dense[candidates]
    lex_rank = np.empty(len(candidates), dtype=np.int64)
    lex_rank[np.argsort(-lex, kind="stable")] = np.arange(len(candidates))
    den_rank = np.empty(len(candidates), dtype=np.int64)
    den_rank[np.argsort(-den, kind="stable")] = np.arange(len(candidates))
    fused = 1.0 / (rrf_k + 1 + lex_rank) + 1.0 / (rrf_k + 1 + den_rank)
    fused = np.where(lex > 0, fused, 1.0 / (rrf_k + 1 + den_rank) + 1.0 / (rrf_k + 1 + pool))
    order = np.argsort(-fused, kind="stable")[:k]
    return [Hit(int(candidates[j]), passages[int(candidates[j])], float(fused[j]), int(lex_rank[j]) + 1,
                int(den_rank[j]) + 1, float(den[j])) for j in order]


def embed_texts(texts: list[str], model_name: str, *, batch_size: int = 32, precision: str = "auto") -> np.ndarray:
    """L2-normalised fp32 embeddings; `precision` "auto" (bf16 autocast on a CPU with native bf16), "fp32" or "bf16".

    sentence-transformers already encodes in length-sorted batches; larger batches were not faster on 2 cores.
    """
    from claimscope.verify.embed import inference_precision, load_embedder

    if not texts:
        return np.zeros((0, 384), dtype=np.float32)
    model = load_embedder(model_name)
    with inference_precision(precision, str(model.device)):
        emb = model.encode(texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True,
                           show_progress_bar=len(texts) > 2000 and logger.isEnabledFor(logging.INFO))
    return np.asarray(emb, dtype=np.float32)


def _unique(passages: Sequence[Passage]) -> list[Passage]:
    seen: set[str] = set()
    out = []
    for p in passages:
        if p.id not in seen:
            seen.add(p.id)
            out.append(p)
    return out


def _npy_bytes(arr: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


def _now() -> str:
    from datetime import UTC, datetime

    return datetime.now(UTC).isoformat(timespec="seconds")
