"""Hybrid evidence search over a corpus index (BM25 per shard + dense ANN, fused by verify.index's reciprocal rank).

`ShardedEvidenceIndex.search_many` has EvidenceIndex's signature and returns the same `Hit`s (Hit.index = the global
row), so `verify.run.Verifier` runs on it unchanged.

- A query restricted to papers (`allowed[i]`, a claim that cites papers) touches only the shards holding those
  papers (manifest.paper_shards): every passage of those papers is a candidate, scored exactly (BM25 of its shard,
  cosine from the memory-mapped embeddings), as EvidenceIndex does.
- An open query takes the BM25 top `depth` merged over the shards and the dense top `depth` from the ANN index;
  candidates are their union, with exact BM25 and cosine scores, ranked within the union; a candidate without a
  lexical match ranks after the whole corpus lexically (`pool`).
On an index of one shard whose corpus has at most `depth` passages both paths give EvidenceIndex's hits exactly.
"""

from __future__ import annotations

import dataclasses
import logging
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from claimscope.types import Passage
from claimscope.verify.corpus.ann import DenseIndex, EmbeddingShards
from claimscope.verify.corpus.bm25 import ShardedBM25, query_tokens
from claimscope.verify.corpus.build import load_manifest
from claimscope.verify.corpus.shards import EMBEDDINGS, PASSAGES, table_passages
from claimscope.verify.index import Hit, _fuse

logger = logging.getLogger(__name__)

DEPTH = 200  # open queries: BM25 and dense candidates each (EvidenceIndex takes the dense top 200)


class _PassageStore:
    """Passages by global row, read one Parquet row group at a time (a small LRU cache of decoded groups); only the
    rows asked for become Passage objects."""

    def __init__(self, paths: Sequence[Path], offsets: np.ndarray, cache_groups: int = 256) -> None:
        self.paths = list(paths)
        self.offsets = offsets
        self.cache: OrderedDict[tuple[int, int], pa.Table] = OrderedDict()
        self.cache_groups = cache_groups
        self._rows_of: dict[int, dict[str, np.ndarray]] = {}
        self._group_starts: dict[int, np.ndarray] = {}
        self._files: dict[int, pq.ParquetFile] = {}

    def _file(self, s: int) -> pq.ParquetFile:
        if s not in self._files:
            self._files[s] = pq.ParquetFile(self.paths[s])
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

    def rows_of(self, s: int, papers: set[str]) -> np.ndarray:
        """Sorted rows of shard s that belong to the given papers."""
        if s not in self._rows_of:
            ids = pq.read_table(self.paths[s], columns=["paper_id"]).column("paper_id").to_numpy(zero_copy_only=False)
            order = np.argsort(ids, kind="stable")
            uniq, starts = np.unique(ids[order], return_index=True)
            bounds = list(starts) + [len(ids)]
            self._rows_of[s] = {str(u): order[bounds[i]: bounds[i + 1]] for i, u in enumerate(uniq)}
        by_paper = self._rows_of[s]
        parts = [by_paper[p] for p in papers if p in by_paper]
        return np.sort(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.int64)


class _Candidates(Sequence[Passage]):
    """The candidate passages of one query, fetched only when the fusion picks them."""

    def __init__(self, store: _PassageStore, rows: np.ndarray) -> None:
        self.store = store
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i):  # type: ignore[no-untyped-def, override]
        return self.store.get(int(self.rows[i]))


class ShardedEvidenceIndex:
    """A built corpus index (`claimscope index build`), searched like verify.index.EvidenceIndex."""

    def __init__(self, index_dir: Path, *, depth: int = DEPTH) -> None:
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

    def __len__(self) -> int:
        return self.manifest.count

    @property
    def encoder(self):  # type: ignore[no-untyped-def]
        if self._encoder is None:
            from claimscope.verify.corpus.encode import ShardEncoder

            self._encoder = ShardEncoder.from_spec(self.manifest.encoder)
        return self._encoder

    def embed_queries(self, queries: Sequence[str]) -> np.ndarray:
        return self.encoder.encode(list(queries))

    def papers(self) -> list[str]:
        return list(self.manifest.paper_shards)

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
        out: list[list[Hit]] = []
        for i in range(len(queries)):
            restrict = allowed[i]
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

    def _open(self, tokens: list[str], q: np.ndarray, d_scores: np.ndarray,
              d_rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        n_shards = len(self.manifest.shards)
        self.touched.update(range(n_shards))
        offsets = self.embeddings.offsets
        matched = [self.bm25.matches(s, tokens) for s in range(n_shards)]
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
        ok = d_rows >= 0
        rows = np.union1d(lex_rows, d_rows[ok]).astype(np.int64)
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
