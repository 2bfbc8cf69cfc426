"""BM25 over passage shards: one bm25s index per shard (the tokenizer of verify.index: English stopwords, Snowball
stemmer), saved under INDEX_DIR/bm25/part-XXXXX/ and loaded memory-mapped. A query's shard scores are merged by
score, as a sharded search engine does with per-shard statistics (Lucene's default query-then-fetch): idf and mean
length come from each shard, which for shards of tens of thousands of passages drawn from one corpus are close to
the corpus-wide values.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from claimscope.errors import BadRunDir
from claimscope.verify.corpus.shards import read_passage_shard
from claimscope.verify.index import _tokenize

logger = logging.getLogger(__name__)

BM25_DIR = "bm25"
DONE = "params.index.json"  # written by bm25s.save; the folder is swapped in whole, so its presence means complete
PAPERS = "papers"  # BM25_DIR/part-XXXXX/papers/: BM25 over each paper's merged text in the shard (document ranking)
PAPER_KEYS = "paper_keys.json"  # the papers of that index, in its document order


def _bm25_index(texts: Sequence[str], **params: float) -> Any:
    """A bm25s index of texts with verify.index's tokens. A shard with no word left after stopwords (a tail shard
    of 'It is.') gets a one-word vocabulary that no query can hold, since bm25s cannot index an empty one (every
    length 0: its 0/0 length norm is never used)."""
    import bm25s

    tokens = _tokenize(texts)
    index = bm25s.BM25(**params)
    if tokens.vocab:
        index.index(tokens, show_progress=False)
    else:
        with np.errstate(invalid="ignore", divide="ignore"):
            index.index(type(tokens)(ids=tokens.ids, vocab={"\x00": 0}), show_progress=False)
    return index


def bm25_shard_dir(index_dir: Path, passage_shard: Path) -> Path:
    return Path(index_dir) / BM25_DIR / Path(passage_shard).stem


def build_shard_bm25(passage_shard: Path, out_dir: Path) -> bool:
    """Index one passage shard into out_dir (temp folder, then renamed). Returns False when it was already there."""

    out_dir = Path(out_dir)
    if (out_dir / DONE).exists():
        return False
    texts = read_passage_shard(passage_shard, ["text"]).column("text").to_pylist()
    index = _bm25_index(texts)
    tmp = out_dir.with_name(f".{out_dir.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    index.save(str(tmp), show_progress=False)
    save_paper_bm25(*paper_bm25(passage_shard), tmp / PAPERS)
    shutil.rmtree(out_dir, ignore_errors=True)
    os.replace(tmp, out_dir)
    return True


def paper_bm25(passage_shard: Path) -> tuple[Any, list[str]]:
    """BM25 over the merged text of each paper's passages in one shard (verify.docrank.merged_text: overlapping
    windows counted once), docrank's k1 and b: the lexical signal of the document ranking. A paper cut by a shard
    boundary has a part in each shard (its scores are summed)."""

    from claimscope.verify.corpus.shards import table_passages
    from claimscope.verify.docrank import DocParams, merged_text

    by_paper: dict[str, list[Any]] = {}
    for p in table_passages(read_passage_shard(passage_shard)):
        by_paper.setdefault(p.paper, []).append(p)
    papers = list(by_paper)
    params = DocParams()
    index = _bm25_index([merged_text(by_paper[k]) for k in papers], k1=params.k1, b=params.b)
    return index, papers


def save_paper_bm25(index: Any, papers: list[str], out_dir: Path) -> None:
    """Write a paper BM25 folder (temp folder, then renamed: a complete folder or none)."""
    import json

    out_dir = Path(out_dir)
    tmp = out_dir.with_name(f".{out_dir.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    index.save(str(tmp), show_progress=False)
    (tmp / PAPER_KEYS).write_text(json.dumps(papers))
    shutil.rmtree(out_dir, ignore_errors=True)
    os.replace(tmp, out_dir)


def query_tokens(queries: Sequence[str]) -> list[list[str]]:
    """Stemmed, stopword-free tokens per query, as verify.index tokenizes them."""
    q = _tokenize(list(queries))
    inv = {v: k for k, v in q.vocab.items()}
    return [[inv[t] for t in ids] for ids in q.ids]


class ShardedBM25:
    """Per-shard BM25 indexes, loaded on first use (memory-mapped)."""

    def __init__(self, index_dir: Path, shard_names: Sequence[str], offsets: np.ndarray) -> None:
        self.dirs = [Path(index_dir) / BM25_DIR / name for name in shard_names]
        self.passage_paths = [Path(index_dir) / "passages" / f"{name}.parquet" for name in shard_names]
        self.offsets = offsets
        self._loaded: dict[int, Any] = {}
        self._papers: dict[int, tuple[Any, dict[str, int]]] = {}

    def shard(self, s: int) -> Any:
        if s not in self._loaded:
            import bm25s

            d = self.dirs[s]
            if not (d / DONE).exists():
                raise BadRunDir(str(d), "missing BM25 shard; rebuild the index (claimscope index build)")
            self._loaded[s] = bm25s.BM25.load(str(d), mmap=True, show_progress=False)
        return self._loaded[s]

    @property
    def loaded(self) -> set[int]:
        return set(self._loaded)

    def matches(self, s: int, tokens: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(sorted rows of shard s with a positive BM25 score, their scores): bm25s's get_scores sums bit for bit
        (float32, added token by token in query order) without np.add.at, then only the matching rows are kept."""
        index = self.shard(s)
        ids = [index.vocab_dict[t] for t in tokens if t in index.vocab_dict]
        if not ids:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        if getattr(index, "nonoccurrence_array", None) is not None:  # BM25L / BM25+: every passage scores
            dense = np.asarray(index.get_scores(ids), dtype=np.float32)
            return np.arange(len(dense)), dense
        data, indices, indptr = index.scores["data"], index.scores["indices"], index.scores["indptr"]
        dense = np.zeros(int(self.offsets[s + 1] - self.offsets[s]), dtype=np.dtype(index.dtype))
        for t in ids:  # a token's postings name each passage once: a fancy-indexed add is exact
            a, b = int(indptr[t]), int(indptr[t + 1])
            dense[indices[a:b]] += data[a:b]
        rows = np.flatnonzero(dense)
        return rows, dense[rows].astype(np.float32, copy=False)

    def scores_at(self, s: int, tokens: list[str], local: np.ndarray,
                  matched: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
        """BM25 scores of the given rows of shard s (0 where no query token occurs)."""
        rows, vals = matched if matched is not None else self.matches(s, tokens)
        if len(rows) == 0:
            return np.zeros(len(local), dtype=np.float32)
        pos = np.minimum(np.searchsorted(rows, local), len(rows) - 1)
        return np.where(rows[pos] == local, vals[pos], np.float32(0)).astype(np.float32, copy=False)

    def paper_index(self, s: int) -> tuple[Any, dict[str, int]]:
        """Shard s's paper BM25 and its paper -> document map; an index built before it existed gets it built here
        from the passage shard (kept in its BM25 folder when that is writable)."""
        if s not in self._papers:
            import json

            import bm25s

            d = self.dirs[s] / PAPERS
            if (d / DONE).exists() and (d / PAPER_KEYS).exists():
                index = bm25s.BM25.load(str(d), mmap=True, show_progress=False)
                papers = json.loads((d / PAPER_KEYS).read_text())
            else:
                index, papers = paper_bm25(self.passage_paths[s])
                try:
                    save_paper_bm25(index, papers, d)
                except OSError as e:
                    logger.warning("paper BM25 of shard %d kept in memory only: %s", s, e)
            self._papers[s] = (index, {p: i for i, p in enumerate(papers)})
        return self._papers[s]

    def paper_scores(self, s: int, tokens: list[str], papers: Sequence[str]) -> np.ndarray:
        """BM25 of the given papers' merged text in shard s (0 for a paper not in it, or no query token in it)."""
        index, pos = self.paper_index(s)
        ids = [int(index.vocab_dict[t]) for t in tokens if t in index.vocab_dict]
        out = np.zeros(len(papers), dtype=np.float32)
        if not ids:
            return out
        where = np.array([pos.get(p, -1) for p in papers], dtype=np.int64)
        scores = np.asarray(index.get_scores(ids), dtype=np.float32)
        ok = where >= 0
        out[ok] = scores[where[ok]]
        return out

    def scores(self, s: int, tokens: list[str]) -> np.ndarray:
        """BM25 score of every passage of shard s."""
        out = np.zeros(int(self.offsets[s + 1] - self.offsets[s]), dtype=np.float32)
        rows, vals = self.matches(s, tokens)
        out[rows] = vals
        return out
