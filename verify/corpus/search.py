"""Hybrid evidence search over a corpus index (BM25 per shard + dense ANN, fused by verify.index's reciprocal rank).

`ShardedEvidenceIndex.search_many` has EvidenceIndex's signature and returns the same `Hit`s (Hit.index = the global
row), so `verify.run.Verifier` runs on it unchanged.

- A query restricted to papers (`allowed[i]`, a claim that cites papers) touches only the shards holding those
  papers (manifest.paper_shards): every passage of those papers is a candidate, scored exactly (BM25 of its shard,
  cosine from the memory-mapped embeddings), as EvidenceIndex does.
- An open query takes the BM25 top `depth` merged over the shards and the dense top `depth` from the ANN index
  (candidate passages, with exact BM25 and cosine scores), then ranks documents first, as EvidenceIndex does
  (`doc_first`): the papers holding a candidate passage are scored with verify.docrank's fusion of per-query
  z-scored signals computed exactly from the shards: BM25 of the paper's merged text (a paper-level BM25 per shard,
  `bm25.paper_bm25`), the cosines of the best and of the two best of all its passages (read from the embedding
  shards), the title cosine where the index stores titles (the passage shards' title column, vectors cached in
  titles/: verify.corpus.titles; titles passed to the constructor override them, and are all there is for an index
  built before titles were stored); with the bundled MiniLM the claim vector of that step goes
  through the query-side adapter (`verify.query_adapter`; `query_adapter=False` turns it off). The best `docs`
  papers' passages are then ranked inside each paper (as a query restricted to that paper) and returned best paper
  first (Hit.doc_rank / doc_score). Weights: DOC_PARAMS, chosen on SciFact train (benchmarks/corpus_docrank.py).
- `doc_first=False`: the passage ranking of the candidates alone (a candidate without a lexical match ranks after
  the whole corpus lexically, `pool`). On an index of one shard whose corpus has at most `depth` passages it gives
  EvidenceIndex's hits restricted to every paper exactly.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from claimscope.errors import BadRunDir
from claimscope.types import Passage
from claimscope.verify.corpus.ann import DenseIndex, EmbeddingShards
from claimscope.verify.corpus.bm25 import ShardedBM25, query_tokens
from claimscope.verify.corpus.build import load_manifest
from claimscope.verify.corpus.shards import EMBEDDINGS, PASSAGES, table_passages
from claimscope.verify.corpus.titles import Titles, load_titles
from claimscope.verify.docrank import DocParams, _z, fuse_signals, top_two
from claimscope.verify.index import Hit, _fuse

if TYPE_CHECKING:
    from claimscope.verify.query_adapter import QueryAdapter

logger = logging.getLogger(__name__)

DEPTH = 200  # open queries: BM25 and dense candidates each (EvidenceIndex takes the dense top 200)
DOCS = 3  # open queries, document-first: documents read (EvidenceIndex.search_many's `docs`)


@dataclass(frozen=True)
class CorpusDocParams:
    """Fusion weights of the corpus index's document ranking: `doc` (verify.docrank.DocParams) weighs the z-scored
    BM25 of the paper's merged text (w_bm25; per-shard paper BM25, verify.corpus.bm25.paper_bm25), its best passage
    cosine (w_max), the sum of its two best (w_top2) and its title cosine (w_title, where titles are known);
    `w_bm25_max` the z-scored BM25 of its best passage."""

    doc: DocParams
    w_bm25_max: float = 0.0


# chosen on SciFact train with base claim vectors (benchmarks/corpus_docrank.py --fit; train recall@3 0.876). The
# adapter was trained on SciFact train, so weights chosen there for adapted vectors are in-sample (they weigh the
# best cosine twice as much: w_max 1.0); adapted vectors take the base weights instead.
DOC_PARAMS = CorpusDocParams(DocParams(w_bm25=1.5, w_max=0.5, w_top2=1.0, w_title=1.0))
DOC_PARAMS_ADAPTED = DOC_PARAMS


@dataclass
class DocCandidates:
    """The candidate papers of one open query (those holding a BM25 or dense top-`depth` passage) with every one of
    their passages, grouped by paper: rows[starts[i]:starts[i + 1]] are paper i's global rows, in index order."""

    papers: list[str]
    rows: np.ndarray
    starts: np.ndarray
    lexical: np.ndarray  # BM25 of each row (its shard's statistics)
    dense: np.ndarray  # cosine of each row with the base claim vector
    bm25: np.ndarray  # per paper: BM25 of its merged text (summed over the shards holding it)
    bm25_max: np.ndarray  # per paper: its best passage BM25
    best: np.ndarray  # best passage cosine with the document query vector (adapted where the adapter applies)
    second: np.ndarray
    title: np.ndarray | None  # title cosine with the document query vector, or None without titles

    def fused(self, p: CorpusDocParams) -> np.ndarray:
        """The fused score of each paper: verify.docrank's signals z-scored over this query's candidate papers."""
        if not self.papers:
            return np.zeros(0)
        out = fuse_signals(p.doc, self.bm25[None], self.best[None], self.second[None],
                           None if self.title is None else self.title[None])[0]
        if p.w_bm25_max:
            out = out + p.w_bm25_max * _z(self.bm25_max[None])[0]
        return out

    def paper_rows(self, i: int) -> slice:
        return slice(int(self.starts[i]), int(self.starts[i + 1]) if i + 1 < len(self.starts) else len(self.rows))


class _PassageStore:
    """Passages by global row, read one Parquet row group at a time (a small LRU cache of decoded groups); only the
    rows asked for become Passage objects."""

    def __init__(self, paths: Sequence[Path], offsets: np.ndarray, cache_groups: int = 256) -> None:
        self.paths = list(paths)
        self.offsets = offsets
        self.cache: OrderedDict[tuple[int, int], pa.Table] = OrderedDict()
        self.cache_groups = cache_groups
        self._rows_of: dict[int, dict[str, np.ndarray]] = {}
        self._paper_codes: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._group_starts: dict[int, np.ndarray] = {}
        self._files: dict[int, pq.ParquetFile] = {}

    def _file(self, s: int) -> pq.ParquetFile:
        if s not in self._files:
            try:
                self._files[s] = pq.ParquetFile(self.paths[s])
            except (OSError, pa.ArrowInvalid) as e:
                raise BadRunDir(str(self.paths[s]), f"unreadable passage shard: {e}; rebuild the index "
                                                    "(claimscope index build)") from e
        return self._files[s]

    def _groups(self, s: int) -> np.ndarray:
        """First row of each Parquet row group of shard s (as written; ROW_GROUP rows each by default)."""
        if s not in self._group_starts:
            meta = self._file(s).metadata
            sizes = [meta.row_group(g).num_rows for g in range(meta.num_row_groups)]
            self._group_starts[s] = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        return self._group_starts[s]

    def get(self, row: int) -> Passage:
        s = int(np.searchsorted(self.offsets, row, side="right") - 1)
        local = row - int(self.offsets[s])
        starts = self._groups(s)
        g = int(np.searchsorted(starts, local, side="right") - 1)
        key = (s, g)
        group = self.cache.get(key)
        if group is None:
            group = self._file(s).read_row_group(g)
            self.cache[key] = group
            if len(self.cache) > self.cache_groups:
                self.cache.popitem(last=False)
        else:
            self.cache.move_to_end(key)
        i = local - int(starts[g])
        return table_passages(group.slice(i, 1))[0]

    def _load_papers(self, s: int) -> None:
        ids = self._file(s).read(columns=["paper_id"]).column("paper_id").to_numpy(zero_copy_only=False)
        order = np.argsort(ids, kind="stable")
        uniq, starts, codes = np.unique(ids[order], return_index=True, return_inverse=True)
        bounds = list(starts) + [len(ids)]
        self._rows_of[s] = {str(u): order[bounds[i]: bounds[i + 1]] for i, u in enumerate(uniq)}
        row_codes = np.empty(len(ids), dtype=np.int64)
        row_codes[order] = codes
        self._paper_codes[s] = (row_codes, uniq)

    def rows_of(self, s: int, papers: set[str]) -> np.ndarray:
        """Sorted rows of shard s that belong to the given papers."""
        if s not in self._rows_of:
            self._load_papers(s)
        by_paper = self._rows_of[s]
        parts = [by_paper[p] for p in papers if p in by_paper]
        return np.sort(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.int64)

    def papers_at(self, s: int, local: np.ndarray) -> np.ndarray:
        """The paper key of each given row of shard s."""
        if s not in self._paper_codes:
            self._load_papers(s)
        codes, names = self._paper_codes[s]
        return names[codes[local]]


class _Candidates(Sequence[Passage]):
    """The candidate passages of one query, fetched only when the fusion picks them."""

    def __init__(self, store: _PassageStore, rows: np.ndarray) -> None:
        self.store = store
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i):
        return self.store.get(int(self.rows[i]))


class ShardedEvidenceIndex:
    """A built corpus index (`claimscope index build`), searched like verify.index.EvidenceIndex."""

    def __init__(self, index_dir: Path, *, depth: int = DEPTH, doc_first: bool = True, docs: int = DOCS,
                 query_adapter: bool | str | Path = True, titles: Mapping[str, str] | None = None,
                 doc_params: CorpusDocParams | None = None, doc_params_adapted: CorpusDocParams | None = None
                 ) -> None:
        self.dir = Path(index_dir)
        self.manifest = load_manifest(self.dir)
        names = [s.name for s in self.manifest.shards]
        self.embeddings = EmbeddingShards([self.dir / EMBEDDINGS / f"{n}.npy" for n in names])
        if len(self.embeddings) != self.manifest.count:
            from claimscope.errors import BadRunDir

            raise BadRunDir(str(self.dir), f"embedding shards hold {len(self.embeddings)} rows, manifest says "
                                           f"{self.manifest.count}; rebuild the index")
        offsets = self.embeddings.offsets
        assert self.manifest.ann is not None
        self.dense = DenseIndex.load(self.dir, self.embeddings, self.manifest.ann)
        self.bm25 = ShardedBM25(self.dir, names, offsets)
        self.store = _PassageStore([self.dir / PASSAGES / f"{n}.parquet" for n in names], offsets)
        self.depth = depth
        self.model_name = self.manifest.encoder.model
        self._encoder = None
        self.touched: set[int] = set()  # shards read by restricted queries (and all shards by open ones)
        # open queries: rank candidate papers first (False: the passage ranking alone), then read the best `docs`
        self.doc_first = doc_first
        self.docs = docs
        # the document ranking's query-side adapter: True = the shipped one (bundled MiniLM only), a folder = that
        # one, False = base claim vectors (VerifySettings.query_adapter)
        self.query_adapter = query_adapter
        self._passed_titles = dict(titles or {})  # paper key -> title, over the stored ones
        self.doc_params = doc_params or DOC_PARAMS
        self.doc_params_adapted = doc_params_adapted or DOC_PARAMS_ADAPTED
        self._stored: Titles | None = None
        self._titles: dict[str, str] | None = None
        self._title_vectors: dict[str, np.ndarray] = {}
        self._seeded = False

    def __len__(self) -> int:
        return self.manifest.count

    @property
    def encoder(self):
        if self._encoder is None:
            from claimscope.verify.corpus.encode import ShardEncoder

            self._encoder = ShardEncoder.from_spec(self.manifest.encoder)
        return self._encoder

    def embed_queries(self, queries: Sequence[str]) -> np.ndarray:
        return self.encoder.encode(list(queries))

    def papers(self) -> list[str]:
        return list(self.manifest.paper_shards)

    # ---- titles ---------------------------------------------------------------------------------------------
    def stored_titles(self) -> Titles:
        """The titles the index stores, with their vectors (read, and embedded, once; see verify.corpus.titles)."""
        if self._stored is None:
            names = [s.name for s in self.manifest.shards]
            self._stored = load_titles(self.dir, [self.dir / PASSAGES / f"{n}.parquet" for n in names],
                                       self.manifest.corpus_hash, self.manifest.encoder, self.embed_queries,
                                       self.embeddings.dims)
            if self._stored.missing_shards == len(names):
                logger.warning("%s stores no paper titles (built before titles were stored): the document ranking "
                               "goes without the title cosine%s; rebuild the index to add them", self.dir,
                               " except for the titles passed in" if self._passed_titles else "")
            elif self._stored.missing_shards:
                logger.warning("%s: %d of %d passage shards store no paper titles (built before titles were "
                               "stored); their papers go without the title cosine", self.dir,
                               self._stored.missing_shards, len(names))
        return self._stored

    @property
    def titles(self) -> dict[str, str]:
        """Paper key -> title used by the document ranking: the stored titles, overridden by those passed in."""
        if self._titles is None:
            self._titles = {**self.stored_titles().as_dict(), **self._passed_titles}
        return self._titles

    def search_many(self, queries: Sequence[str], k: int, *, allowed: Sequence[set[str] | None] | None = None,
                    rrf_k: int = 60, query_embeddings: np.ndarray | None = None) -> list[list[Hit]]:
        """Top-k fused hits per query; `allowed[i]` restricts query i to passages of those paper keys."""
        if not queries:
            return []
        q_emb = self.embed_queries(queries) if query_embeddings is None else np.asarray(query_embeddings, np.float32)
        tokens = query_tokens(queries)
        allowed = list(allowed) if allowed is not None else [None] * len(queries)
        open_q = [i for i, a in enumerate(allowed) if a is None]
        dense_open: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        if open_q:
            d_s, d_i = self.dense.search(q_emb[open_q], min(self.depth, len(self)))
            dense_open = {qi: (d_s[j], d_i[j]) for j, qi in enumerate(open_q)}
        doc_first = self.doc_first and bool(open_q)
        adapter = self.adapter() if doc_first else None
        q_doc = adapter.apply(q_emb) if adapter is not None else q_emb
        out: list[list[Hit]] = []
        for i in range(len(queries)):
            restrict = allowed[i]
            if restrict is None and doc_first:
                matched = self._matches(tokens[i])
                rows = self._open_rows(dense_open[i][1], matched)
                cands = self._doc_candidates(tokens[i], q_emb[i], q_doc[i], rows, matched)
                params = self.doc_params_adapted if adapter is not None else self.doc_params
                out.append(self._within_docs(cands, cands.fused(params), k, rrf_k))
                continue
            if restrict is None:
                rows, lexical, dense = self._open(tokens[i], q_emb[i], *dense_open[i])
                pool = len(self)
            else:
                rows, lexical, dense = self._restricted(tokens[i], q_emb[i], restrict)
                pool = None
            if len(rows) == 0:
                out.append([])
                continue
            hits = _fuse(_Candidates(self.store, rows), np.arange(len(rows)), lexical, dense, k, rrf_k, pool=pool)
            out.append([dataclasses.replace(h, index=int(rows[h.index])) for h in hits])
        return out

    def search(self, query: str, k: int, *, allowed: set[str] | None = None, rrf_k: int = 60) -> list[Hit]:
        return self.search_many([query], k, allowed=[allowed], rrf_k=rrf_k)[0]

    # ---- documents (open queries) ---------------------------------------------------------------------------
    def adapter(self) -> QueryAdapter | None:
        """The query-side adapter of the document ranking in use (None: base claim vectors)."""
        from claimscope.verify.query_adapter import adapter_for

        return adapter_for(self.model_name, self.query_adapter)

    def doc_candidates(self, queries: Sequence[str], *, query_embeddings: np.ndarray | None = None,
                       adapter: bool | None = None) -> list[DocCandidates]:
        """Each open query's candidate papers and their document-ranking signals; `adapter=False` computes the
        cosines with the base claim vectors even where the adapter applies (None: `self.query_adapter`)."""
        if not queries:
            return []
        q_emb = self.embed_queries(queries) if query_embeddings is None else np.asarray(query_embeddings, np.float32)
        found = self.adapter() if adapter is not False else None
        q_doc = found.apply(q_emb) if found is not None else q_emb
        tokens = query_tokens(queries)
        d_s, d_i = self.dense.search(q_emb, min(self.depth, len(self)))
        out = []
        for i in range(len(queries)):
            matched = self._matches(tokens[i])
            rows = self._open_rows(d_i[i], matched)
            out.append(self._doc_candidates(tokens[i], q_emb[i], q_doc[i], rows, matched))
        return out

    def search_docs(self, queries: Sequence[str], k: int, *, query_embeddings: np.ndarray | None = None,
                    adapter: bool | None = None) -> list[list[tuple[str, float]]]:
        """The top-k papers per open query with their fused scores, best first."""
        found = self.adapter() if adapter is not False else None
        params = self.doc_params_adapted if found is not None else self.doc_params
        out = []
        for c in self.doc_candidates(queries, query_embeddings=query_embeddings, adapter=adapter):
            fused = c.fused(params)
            order = np.lexsort((np.arange(len(fused)), -fused))[:k]
            out.append([(c.papers[j], float(fused[j])) for j in order])
        return out

    def _doc_candidates(self, tokens: list[str], q: np.ndarray, q_doc: np.ndarray, rows: np.ndarray,
                        matched: list[tuple[np.ndarray, np.ndarray]]) -> DocCandidates:
        """The papers of the candidate passages `rows`, with all of their passages scored exactly."""
        offsets = self.embeddings.offsets
        shard_of, local = self.embeddings.locate(rows)
        papers = sorted({str(p) for s in np.unique(shard_of)
                         for p in self.store.papers_at(int(s), local[shard_of == s])})
        parts, starts, n = [], [], 0
        for paper in papers:
            own = [self.store.rows_of(s, {paper}) + int(offsets[s]) for s in self.manifest.paper_shards[paper]]
            part = np.concatenate(own)
            starts.append(n)
            parts.append(part)
            n += len(part)
        all_rows = np.concatenate(parts) if parts else np.zeros(0, np.int64)
        starts_a = np.asarray(starts, dtype=np.int64)
        shard_of, local = self.embeddings.locate(all_rows)
        lexical = np.zeros(len(all_rows), dtype=np.float32)
        for s in np.unique(shard_of):
            sel = shard_of == s
            lexical[sel] = self.bm25.scores_at(int(s), tokens, local[sel], matched[int(s)])
        vectors = self.embeddings.rows(all_rows)
        dense = vectors @ q
        if not papers:
            empty = np.zeros(0, np.float32)
            return DocCandidates([], all_rows, starts_a, lexical, dense, empty, empty, empty, empty, None)
        doc_dense = dense if q_doc is q else vectors @ q_doc
        best, second = top_two(doc_dense[None], starts_a)
        title = None
        if self.titles:
            title = self._titles_of(papers) @ q_doc
        paper_bm25 = np.zeros(len(papers), dtype=np.float32)
        for s in sorted({s for p in papers for s in self.manifest.paper_shards[p]}):
            paper_bm25 += self.bm25.paper_scores(s, tokens, papers)
        return DocCandidates(papers, all_rows, starts_a, lexical, dense, paper_bm25,
                             np.maximum.reduceat(lexical, starts_a), best[0], second[0], title)

    def _titles_of(self, papers: Sequence[str]) -> np.ndarray:
        """Title vectors of these papers: the stored ones, or (a title passed in that differs from the stored one)
        embedded once each; a paper without a title gets a zero vector."""
        stored = self.stored_titles()
        if not self._seeded:
            self._seeded = True
            rows = stored.rows()
            for p, title in self.titles.items():
                if p in rows and stored.titles[rows[p]] == title:
                    self._title_vectors[p] = stored.vectors[rows[p]]
        todo = [p for p in dict.fromkeys(papers) if p not in self._title_vectors and self.titles.get(p)]
        if todo:
            for p, v in zip(todo, self.embed_queries([self.titles[p] for p in todo]), strict=True):
                self._title_vectors[p] = np.asarray(v, dtype=np.float32)
        zero = np.zeros(self.embeddings.dims, dtype=np.float32)
        return np.stack([self._title_vectors.get(p, zero) for p in papers])

    def _within_docs(self, cands: DocCandidates, fused: np.ndarray, k: int, rrf_k: int) -> list[Hit]:
        """The best passages of the top `docs` papers, about k / docs each, best paper first (as EvidenceIndex)."""
        if not cands.papers:
            return []
        top = np.lexsort((np.arange(len(fused)), -fused))[: self.docs]
        per_doc = -(-k // len(top))
        out: list[Hit] = []
        for rank, j in enumerate(top, 1):
            sl = cands.paper_rows(int(j))
            rows = cands.rows[sl]
            for h in _fuse(_Candidates(self.store, rows), np.arange(len(rows)), cands.lexical[sl], cands.dense[sl],
                           per_doc, rrf_k):
                out.append(dataclasses.replace(h, index=int(rows[h.index]), doc_rank=rank,
                                               doc_score=float(fused[j])))
        return out[:k]

    # ---- per query ------------------------------------------------------------------------------------------
    def _restricted(self, tokens: list[str], q: np.ndarray,
                    papers: set[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        shards = sorted({s for p in papers for s in self.manifest.paper_shards.get(p, [])})
        rows, lexical, dense = [], [], []
        for s in shards:
            self.touched.add(s)
            local = self.store.rows_of(s, papers)
            if len(local) == 0:
                continue
            rows.append(local + int(self.embeddings.offsets[s]))
            lexical.append(self.bm25.scores_at(s, tokens, local))
            dense.append(np.asarray(self.embeddings.arrays[s][local], dtype=np.float32) @ q)
        if not rows:
            return np.zeros(0, dtype=np.int64), np.zeros(0, np.float32), np.zeros(0, np.float32)
        return np.concatenate(rows), np.concatenate(lexical), np.concatenate(dense)

    def _matches(self, tokens: list[str]) -> list[tuple[np.ndarray, np.ndarray]]:
        """Each shard's rows with a positive BM25 score, and the scores."""
        return [self.bm25.matches(s, tokens) for s in range(len(self.manifest.shards))]

    def _open_rows(self, d_rows: np.ndarray, matched: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
        """An open query's candidate rows, sorted: its BM25 top `depth` merged over the shards ∪ its dense top rows."""
        self.touched.update(range(len(self.manifest.shards)))
        offsets = self.embeddings.offsets
        top_rows, top_vals = [], []
        for s, (rows_s, vals_s) in enumerate(matched):  # each shard's BM25 top `depth`, then the merged top `depth`
            if len(rows_s) > self.depth:
                keep = np.argpartition(-vals_s, self.depth - 1)[: self.depth]
                rows_s, vals_s = rows_s[keep], vals_s[keep]
            positive = vals_s > 0
            top_rows.append(rows_s[positive] + int(offsets[s]))
            top_vals.append(vals_s[positive])
        lex_rows = np.concatenate(top_rows) if top_rows else np.zeros(0, np.int64)
        lex_vals = np.concatenate(top_vals) if top_vals else np.zeros(0, np.float32)
        if len(lex_rows) > self.depth:
            lex_rows = lex_rows[np.argpartition(-lex_vals, self.depth - 1)[: self.depth]]
        return np.union1d(lex_rows, d_rows[d_rows >= 0]).astype(np.int64)

    def _open(self, tokens: list[str], q: np.ndarray, d_scores: np.ndarray, d_rows: np.ndarray,
              matched: list[tuple[np.ndarray, np.ndarray]] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The candidate rows with their exact BM25 and cosine scores (the passage ranking's inputs)."""
        matched = self._matches(tokens) if matched is None else matched
        rows = self._open_rows(d_rows, matched)
        ok = d_rows >= 0
        shard_of, local = self.embeddings.locate(rows)
        lexical = np.zeros(len(rows), dtype=np.float32)
        for s in np.unique(shard_of):
            sel = shard_of == s
            lexical[sel] = self.bm25.scores_at(int(s), tokens, local[sel], matched[int(s)])
        dense = np.full(len(rows), np.nan, dtype=np.float32)
        dense[np.searchsorted(rows, d_rows[ok])] = d_scores[ok]
        missing = np.isnan(dense)
        if missing.any():
            dense[missing] = self.embeddings.rows(rows[missing]) @ q
        return rows, lexical, dense
