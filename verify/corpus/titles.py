"""Paper titles of a corpus index and their vectors (the document ranking's title cosine).

The titles live in the passage shards (the `title` column: every row of a paper carries its title, so they are written,
resumed and sharded with the passages). Their vectors, made with the index's own encoder, are cached in
`titles/` (titles.json: paper keys and titles; vectors.npy: one L2-normalised row per title), keyed by the index's
corpus hash and encoder so a rebuilt or re-embedded index does not reuse stale ones. `claimscope index build` fills
the cache; an index whose cache is missing (or stale, or unwritable) rebuilds it on first use.

An index built before titles were stored has no `title` column: it has no titles (the document ranking goes without
the title cosine, as before), and says so in the log.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from claimscope.rundir import atomic_write_bytes
from claimscope.types import EncoderSpec
from claimscope.verify.corpus.shards import TITLE, atomic_path

logger = logging.getLogger(__name__)

TITLES_DIR = "titles"
TITLES_FILE = "titles.json"
VECTORS_FILE = "vectors.npy"


@dataclass
class Titles:
    """Paper key -> title, with the title vectors (row i = papers[i]); `missing_shards` passage shards have no title
    column (written before titles were stored)."""

    papers: list[str]
    titles: list[str]
    vectors: np.ndarray
    missing_shards: int = 0

    def as_dict(self) -> dict[str, str]:
        return dict(zip(self.papers, self.titles, strict=True))

    def rows(self) -> dict[str, int]:
        return {p: i for i, p in enumerate(self.papers)}


def read_titles(passage_shards: Sequence[Path]) -> tuple[dict[str, str], int]:
    """The titles in the passage shards (a paper's first non-empty one, shards in order) and how many shards have no
    title column."""
    titles: dict[str, str] = {}
    missing = 0
    for path in passage_shards:
        if TITLE not in pq.read_schema(path).names:
            missing += 1
            continue
        table = pq.read_table(path, columns=["paper_id", TITLE])
        table = table.filter(table.column(TITLE).is_valid())
        if table.num_rows == 0:
            continue
        ids = table.column("paper_id").to_numpy(zero_copy_only=False)
        _, first = np.unique(ids, return_index=True)
        col = table.column(TITLE)
        for i in np.sort(first):
            paper, title = str(ids[i]), str(col[int(i)]).strip()
            if title and paper not in titles:
                titles[paper] = title
    return titles, missing


def cache_key(corpus_hash: str, encoder: EncoderSpec) -> str:
    return hashlib.sha256(f"{corpus_hash}\n{encoder.model_dump_json()}".encode()).hexdigest()


def load_titles(index_dir: Path, passage_shards: Sequence[Path], corpus_hash: str, encoder: EncoderSpec,
                embed: Callable[[list[str]], np.ndarray], dims: int) -> Titles:
    """The index's titles and their vectors: from the cache in `index_dir/titles` when it matches, else read from the
    passage shards, embedded with `embed` and cached (when the folder is writable)."""
    folder = Path(index_dir) / TITLES_DIR
    key = cache_key(corpus_hash, encoder)
    try:
        meta = json.loads((folder / TITLES_FILE).read_text())
        if meta.get("key") == key:
            vectors = np.load(folder / VECTORS_FILE)
            if len(vectors) == len(meta["papers"]) == len(meta["titles"]):
                return Titles(list(meta["papers"]), list(meta["titles"]), np.asarray(vectors, np.float32),
                              int(meta.get("missing_shards", 0)))
    except (OSError, ValueError, KeyError, TypeError):
        pass
    found, missing = read_titles(passage_shards)
    papers = sorted(found)
    texts = [found[p] for p in papers]
    t0 = time.perf_counter()
    vectors = (np.asarray(embed(texts), dtype=np.float32) if texts else np.zeros((0, dims), np.float32))
    if texts:
        logger.info("embedded %d paper titles in %.1fs", len(texts), time.perf_counter() - t0)
    out = Titles(papers, texts, vectors, missing)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(folder / VECTORS_FILE) as tmp, open(tmp, "wb") as f:
            np.save(f, vectors)
        atomic_write_bytes(folder / TITLES_FILE, json.dumps(
            {"key": key, "missing_shards": missing, "papers": papers, "titles": texts}).encode())
    except OSError as e:
        logger.info("title vectors not cached in %s: %s", folder, e)
    return out
