"""Dense search over the memory-mapped embedding shards: exact below a size threshold, FAISS IVF-Flat / HNSW above it,
IVF-PQ (re-ranked with the exact vectors) when IVF-Flat would not fit the memory budget.

The index is trained on a seeded sample of rows and filled shard by shard (one shard converted to float32 at a time);
FAISS ids are global row numbers (shard order, then row order). Recall@10 against exact search is measured on a sample
of queries when the index is built; for IVF the smallest nprobe (and for HNSW the smallest efSearch) reaching
`target_recall` is kept. Recall counts an approximate hit as right when its exact score reaches the exact 10th score
(so ties among duplicate passages are not counted as misses).
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from claimscope.errors import BadRunDir, BadSettings
from claimscope.types import AnnInfo
from claimscope.verify.corpus.shards import read_embedding_shard

logger = logging.getLogger(__name__)

ANN_DIR = "ann"
INDEX_FILE = "index.faiss"
INFO_FILE = "ann.json"
KINDS = ("auto", "flat", "ivf", "hnsw", "ivfpq")
EXACT_MAX = 100_000          # auto: exact search up to this many passages
MEMORY_BUDGET = 2 << 30      # auto: IVF-Flat while its vectors fit in this many bytes, else IVF-PQ
TARGET_RECALL = 0.95
CHUNK = 16_384               # rows converted to float32 at a time
SMALL_BATCH = 16             # query batches smaller than this are searched on one thread


class EmbeddingShards:
    """The embedding shards of an index, memory-mapped, addressed by global row number."""

    def __init__(self, paths: Sequence[Path]) -> None:
        self.paths = [Path(p) for p in paths]
        self.arrays = [read_embedding_shard(p) for p in self.paths]
        sizes = [a.shape[0] for a in self.arrays]
        self.offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        self.dims = int(self.arrays[0].shape[1]) if self.arrays else 0
        for p, a in zip(self.paths, self.arrays, strict=True):
            if a.ndim != 2 or a.shape[1] != self.dims:
                raise BadRunDir(str(p), f"embedding shard of shape {a.shape}, expected [rows, {self.dims}]")

    def __len__(self) -> int:
        return int(self.offsets[-1])

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.arrays)

    def locate(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(shard number, row in shard) of global rows."""
        shard = np.searchsorted(self.offsets, rows, side="right") - 1
        return shard, rows - self.offsets[shard]

    def rows(self, rows: np.ndarray) -> np.ndarray:
        """float32 vectors of global rows (any order)."""
        rows = np.asarray(rows, dtype=np.int64)
        out = np.zeros((len(rows), self.dims), dtype=np.float32)
        if len(rows) == 0:
            return out
        shard, local = self.locate(rows)
        for s in np.unique(shard):
            sel = shard == s
            order = np.argsort(local[sel])  # sorted reads from the memory map
            idx = np.flatnonzero(sel)[order]
            out[idx] = self.arrays[int(s)][local[sel][order]]
        return out

    def chunks(self, shards: Sequence[int] | None = None) -> Iterator[tuple[int, np.ndarray]]:
        """(first global row, float32 block) over the given shards (all by default), CHUNK rows at a time."""
        for s in range(len(self.arrays)) if shards is None else shards:
            arr = self.arrays[s]
            for start in range(0, arr.shape[0], CHUNK):
                yield int(self.offsets[s]) + start, np.asarray(arr[start: start + CHUNK], dtype=np.float32)

    def sample(self, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """(sorted global rows, vectors) of a seeded uniform sample of n rows."""
        n = min(n, len(self))
        rows = np.sort(np.random.default_rng(seed).choice(len(self), size=n, replace=False))
        return rows, self.rows(rows)


def exact_topk(shards: EmbeddingShards, queries: np.ndarray, k: int,
               which: Sequence[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Exact inner-product top-k by a streaming scan: (scores [q, k], global rows [q, k]), -1 rows where fewer."""
    q = np.asarray(queries, dtype=np.float32)
    best_s = np.full((len(q), k), -np.inf, dtype=np.float32)
    best_i = np.full((len(q), k), -1, dtype=np.int64)
    for first, block in shards.chunks(which):
        scores = q @ block.T
        kk = min(k, scores.shape[1])
        part = np.argpartition(-scores, kk - 1, axis=1)[:, :kk]
        cand_s = np.concatenate([best_s, np.take_along_axis(scores, part, axis=1)], axis=1)
        cand_i = np.concatenate([best_i, part + first], axis=1)
        top = np.argsort(-cand_s, axis=1, kind="stable")[:, :k]
        best_s = np.take_along_axis(cand_s, top, axis=1)
        best_i = np.take_along_axis(cand_i, top, axis=1)
    return best_s, best_i


def choose_kind(n: int, dims: int, requested: str = "auto", *, exact_max: int = EXACT_MAX,
                memory_budget: int = MEMORY_BUDGET) -> tuple[str, str]:
    """(kind, reason)."""
    if requested not in KINDS:
        raise BadSettings("--ann", f"unknown ANN kind {requested!r}; choose one of {', '.join(KINDS)}")
    if requested != "auto":
        return requested, "requested"
    if n <= exact_max:
        return "flat", f"{n} passages <= exact threshold {exact_max}"
    need = n * dims * 4
    if need <= memory_budget:
        return "ivf", f"{n} passages > {exact_max}; IVF-Flat vectors {need / 2**30:.2f} GiB fit the budget " \
                      f"{memory_budget / 2**30:.2f} GiB"
    return "ivfpq", f"IVF-Flat would need {need / 2**30:.2f} GiB > budget {memory_budget / 2**30:.2f} GiB"


def _nlist(n: int) -> int:
    return int(min(65_536, max(16, 2 * math.sqrt(n))))


class DenseIndex:
    """A loaded dense index: `search(queries, k)` -> (scores, global rows), exact scores for every kind."""

    def __init__(self, shards: EmbeddingShards, info: AnnInfo, faiss_index: Any = None) -> None:
        self.shards = shards
        self.info = info
        self.index = faiss_index

    @classmethod
    def load(cls, index_dir: Path, shards: EmbeddingShards, info: AnnInfo) -> DenseIndex:
        import faiss

        if info.kind == "flat":  # at most exact_max vectors: held as float32 in a FAISS flat index
            flat = faiss.IndexFlatIP(shards.dims)
            for _, block in shards.chunks():
                flat.add(block)
            return cls(shards, info, flat)

        path = Path(index_dir) / ANN_DIR / INDEX_FILE
        if not path.exists():
            raise BadRunDir(str(path), "missing; rebuild the index (claimscope index build)")
        flags = faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY if info.kind in ("ivf", "ivfpq") else 0
        index = faiss.read_index(str(path), flags)
        dense = cls(shards, info, index)
        dense.set_params(info.params)
        return dense

    def set_params(self, params: dict[str, Any]) -> None:
        import faiss

        if self.index is None:
            return
        if "nprobe" in params:
            faiss.extract_index_ivf(self.index).nprobe = int(params["nprobe"])
        if "efSearch" in params:
            self.index.hnsw.efSearch = int(params["efSearch"])

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        q = np.ascontiguousarray(queries, dtype=np.float32)
        k = min(k, len(self.shards))
        if self.index is None:
            return exact_topk(self.shards, q, k)
        import faiss

        fetch = k * int(self.info.params.get("refine", 1))
        threads = faiss.omp_get_max_threads()
        if len(q) < SMALL_BATCH:  # a few queries: OpenMP start-up and spinning cost more than they save (16 ms vs
            faiss.omp_set_num_threads(1)  # 0.17 ms for one query on 10k vectors on a busy 2-core machine)
        try:
            scores, ids = self.index.search(q, min(fetch, len(self.shards)))
        finally:
            faiss.omp_set_num_threads(threads)
        if self.info.kind == "flat":
            return scores, ids
        # exact scores from the stored vectors: IVF-PQ scores are approximate and the fusion wants real cosines
        scores = np.full(ids.shape, -np.inf, dtype=np.float32)
        flat = ids.ravel()
        ok = flat >= 0
        vecs = self.shards.rows(flat[ok])
        qi = np.repeat(np.arange(len(q)), ids.shape[1])[ok]
        scores.ravel()[np.flatnonzero(ok)] = np.einsum("ij,ij->i", vecs, q[qi])
        order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        return np.take_along_axis(scores, order, axis=1), np.take_along_axis(ids, order, axis=1)


def recall_at(dense: DenseIndex, queries: np.ndarray, k: int = 10, exclude: np.ndarray | None = None,
              exact: tuple[np.ndarray, np.ndarray] | None = None) -> float:
    """Mean fraction of the approximate top-k whose exact score reaches the exact k-th score (tie-aware recall@k).
    `exclude[i]` is a global row left out for query i (the query's own row when queries are corpus rows); `exact`
    is `exact_topk(shards, queries, k + (1 if exclude is given))` when already computed."""
    extra = 1 if exclude is not None else 0
    ex_s, ex_i = exact if exact is not None else exact_topk(dense.shards, queries, k + extra)
    ap_s, ap_i = dense.search(queries, k + extra)
    total = 0.0
    for i in range(len(queries)):
        es, ei = ex_s[i], ex_i[i]
        as_, ai = ap_s[i], ap_i[i]
        if exclude is not None:
            es, as_ = es[ei != exclude[i]][:k], as_[ai != exclude[i]][:k]
        kth = es[min(k, len(es)) - 1]
        total += float(np.sum(as_[:k] >= kth - 1e-5)) / min(k, len(es))
    return total / max(1, len(queries))


def build_ann(index_dir: Path, shards: EmbeddingShards, requested: str = "auto", *, exact_max: int = EXACT_MAX,
              memory_budget: int = MEMORY_BUDGET, target_recall: float = TARGET_RECALL, recall_queries: int = 200,
              queries: np.ndarray | None = None, queries_label: str = "", seed: int = 0) -> AnnInfo:
    """Build the dense index for the shards into INDEX_DIR/ann/ (written to a temp folder, then swapped in).

    Recall is measured (and nprobe / efSearch tuned) on `queries` when given: query-like vectors matter, because
    corpus rows sit inside the clusters an IVF index is made of and overstate recall for claims (SciFact dev claims
    on 1M passages: 0.68 where corpus rows gave 0.96). Otherwise on `recall_queries` sampled corpus rows (each
    query's own row left out)."""
    t0 = time.perf_counter()
    n, d = len(shards), shards.dims
    kind, reason = choose_kind(n, d, requested, exact_max=exact_max, memory_budget=memory_budget)
    ann_dir = Path(index_dir) / ANN_DIR
    tmp = ann_dir.with_name(f".{ANN_DIR}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    info = AnnInfo(kind=kind, reason=reason)
    index = None
    if kind != "flat":
        index, info.params = _train_and_fill(shards, kind, seed)
    dense = DenseIndex(shards, info, index)
    exclude: np.ndarray | None = None
    if queries is not None and len(queries):
        q_vecs = np.asarray(queries, dtype=np.float32)
        info.recall_on = queries_label or "given queries"
    else:
        exclude, q_vecs = shards.sample(min(recall_queries, n), seed=seed + 1)
        info.recall_on = "corpus rows (own row left out)"
    if kind == "flat":
        info.recall_at_10 = 1.0  # exact by construction
    else:
        info.recall_at_10 = _tune(dense, q_vecs, exclude, target_recall)
    info.recall_queries = len(q_vecs)
    if index is not None:
        import faiss

        faiss.write_index(index, str(tmp / INDEX_FILE))
    info.seconds = round(time.perf_counter() - t0, 2)
    info.bytes = sum(f.stat().st_size for f in tmp.iterdir())
    (tmp / INFO_FILE).write_text(info.model_dump_json(indent=2) + "\n")
    shutil.rmtree(ann_dir, ignore_errors=True)
    os.replace(tmp, ann_dir)
    logger.info("dense index %s over %d passages: %s; recall@10 %.3f on %d sample queries (%.1fs)", kind, n,
                json.dumps(info.params), info.recall_at_10, info.recall_queries, info.seconds)
    return info


def _train_and_fill(shards: EmbeddingShards, kind: str, seed: int) -> tuple[Any, dict[str, Any]]:
    import faiss

    n, d = len(shards), shards.dims
    params: dict[str, Any]
    index: Any
    if kind == "hnsw":
        params = {"M": 32, "efConstruction": 80, "efSearch": 64}
        index = faiss.IndexHNSWFlat(d, params["M"], faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = params["efConstruction"]
    else:
        nlist = min(_nlist(n), max(1, n // 39))
        quantizer = faiss.IndexFlatIP(d)
        if kind == "ivf":
            index = faiss.IndexIVFFlat(quantizer, d, nlist, faiss.METRIC_INNER_PRODUCT)
            params = {"nlist": nlist, "nprobe": 16}
        else:
            # sub-vectors of 8 dimensions (48 for MiniLM's 384), 8 bits each: 48 bytes per vector
            m = next((m for m in (64, 48, 32, 24, 16, 12, 8, 6, 4, 2) if d % m == 0 and d // m >= 8), 1)
            index = faiss.IndexIVFPQ(quantizer, d, nlist, m, 8, faiss.METRIC_INNER_PRODUCT)
            params = {"nlist": nlist, "nprobe": 16, "pq_m": m, "pq_bits": 8, "refine": 10}
        sample_n = min(n, max(64 * nlist, 10_000), 200_000)
        _, train = shards.sample(sample_n, seed=seed)
        params["train_sample"] = int(sample_n)
        t = time.perf_counter()
        index.train(train)
        del train
        logger.info("trained %s (nlist %d) on %d sampled rows in %.1fs", kind, nlist, sample_n, time.perf_counter() - t)
    for _, block in shards.chunks():
        index.add(block)
    return index, params


def _tune(dense: DenseIndex, q_vecs: np.ndarray, exclude: np.ndarray | None, target: float) -> float:
    """Smallest nprobe / efSearch reaching `target` recall@10 (kept in dense.info.params); returns that recall."""
    params = dense.info.params
    if "nprobe" in params:
        name, grid = "nprobe", [p for p in (1, 2, 4, 8, 16, 32, 64, 128, 256, 512) if p <= params["nlist"]]
    else:
        name, grid = "efSearch", [16, 32, 64, 128, 256, 512]
    recall = 0.0
    exact = exact_topk(dense.shards, q_vecs, 11 if exclude is not None else 10)
    for value in grid:
        params[name] = value
        dense.set_params(params)
        recall = recall_at(dense, q_vecs, 10, exclude=exclude, exact=exact)
        logger.debug("%s=%d recall@10 %.4f", name, value, recall)
        if recall >= target:
            break
    return round(recall, 4)
