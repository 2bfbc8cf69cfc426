"""Passage shards (Parquet) and embedding shards (.npy), written atomically so a killed build resumes by shard.

Layout under INDEX_DIR: `passages/part-00000.parquet` (columns in PASSAGE_SCHEMA, at most `shard_size` rows; the
`title` column, the paper's title on each of its rows, is missing from shards written before it existed) and
`embeddings/part-00000.npy` (float32 or float16 [rows, dims], L2-normalised, the passage shard's row order).
A shard file either exists whole or not at all: it is written under a hidden temp name (`.<name>.<pid>.<rand>.tmp`,
the pattern `claimscope.rundir.sweep_stale_temps` cleans up) and renamed into place.

`iter_passage_shards` cuts a stream of documents into shards and records, for each finished shard, where in the
stream the next one starts (`ingest.json`), so a rerun after a kill skips finished shards without re-reading their
documents and redoes the one that was being written.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import Field

from claimscope.errors import BadRunDir
from claimscope.rundir import sha256_file, write_json
from claimscope.types import Model, Passage

logger = logging.getLogger(__name__)

PASSAGES = "passages"
EMBEDDINGS = "embeddings"
INGEST_STATE = "ingest.json"

PASSAGE_SCHEMA = pa.schema([
    ("passage_id", pa.string()),
    ("paper_id", pa.string()),
    ("arxiv_id", pa.string()),
    ("version", pa.string()),
    ("page", pa.int32()),
    ("section", pa.string()),
    ("start", pa.int32()),
    ("end", pa.int32()),
    ("text", pa.string()),
    ("title", pa.string()),  # the paper's title where the source gives one (null otherwise; absent in older shards)
])
TITLE = "title"
COLUMNS = tuple(n for n in PASSAGE_SCHEMA.names if n != TITLE)  # a Passage's fields
ROW_GROUP = 1024  # rows per Parquet row group: fetching one passage decodes one group (~0.5 ms), not the whole shard


def shard_name(i: int) -> str:
    return f"part-{i:05d}"


def passage_shard_path(index_dir: Path, i: int) -> Path:
    return Path(index_dir) / PASSAGES / f"{shard_name(i)}.parquet"


def embedding_shard_path(out_dir: Path, passage_shard: Path) -> Path:
    """embeddings/part-00000.npy for passages/part-00000.parquet."""
    return Path(out_dir) / f"{Path(passage_shard).stem}.npy"


def list_passage_shards(index_dir: Path) -> list[Path]:
    return sorted((Path(index_dir) / PASSAGES).glob("part-*.parquet"))


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temp path next to `path`; renamed over it when the block ends without error, removed otherwise."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# ------------------------------------------------------------------------------------------------ passage shards


def passage_row(p: Passage, title: str | None = None) -> dict[str, Any]:
    """A passage shard row; `title` is its paper's title (every row of a paper carries it, so a shard holds the titles
    of its own papers and a resumed or re-sharded build writes the same bytes)."""
    return {"passage_id": p.id, "paper_id": p.paper, "arxiv_id": p.arxiv_id,
            "version": None if p.version is None else str(p.version), "page": p.page, "section": p.section,
            "start": p.start, "end": p.end, "text": p.text, TITLE: title or None}


def write_passage_shard(path: Path, rows: Sequence[dict[str, Any]] | pa.Table) -> str:
    """Write one passage shard atomically; returns its sha256."""
    table = rows if isinstance(rows, pa.Table) else pa.Table.from_pylist(list(rows), schema=PASSAGE_SCHEMA)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd", row_group_size=ROW_GROUP)
    return sha256_file(path)


def read_passage_shard(path: Path, columns: Sequence[str] | None = None) -> pa.Table:
    try:
        return pq.read_table(path, columns=list(columns) if columns else None)
    except (OSError, pa.ArrowInvalid) as e:
        raise BadRunDir(str(path), f"unreadable passage shard: {e}") from e


def passage_shard_rows(path: Path) -> int:
    try:
        return int(pq.ParquetFile(path).metadata.num_rows)
    except (OSError, pa.ArrowInvalid) as e:
        raise BadRunDir(str(path), f"unreadable passage shard: {e}") from e


def table_passages(table: pa.Table) -> list[Passage]:
    """Passages of (part of) a passage shard; fields trusted (they were validated when the shard was written)."""
    cols = {name: table.column(name).to_pylist() for name in COLUMNS}
    return [Passage.model_construct(id=cols["passage_id"][i], paper=cols["paper_id"][i], arxiv_id=cols["arxiv_id"][i],
                                    version=None if cols["version"][i] is None else int(cols["version"][i]),
                                    page=cols["page"][i], section=cols["section"][i], start=cols["start"][i],
                                    end=cols["end"][i], text=cols["text"][i])
            for i in range(table.num_rows)]


# ---------------------------------------------------------------------------------------------- embedding shards


def write_embedding_shard(path: Path, array: np.ndarray, dtype: str | None = None) -> str:
    """Write one [rows, dims] embedding shard atomically (cast to `dtype` when given); returns its sha256."""
    arr = np.ascontiguousarray(array if dtype is None else np.asarray(array).astype(dtype, copy=False))
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, arr)
    return sha256_file(path)


def read_embedding_shard(path: Path) -> np.ndarray:
    """The shard memory-mapped read-only."""
    try:
        return np.load(path, mmap_mode="r")
    except (OSError, ValueError) as e:
        raise BadRunDir(str(path), f"unreadable embedding shard: {e}") from e


def embedding_complete(path: Path, rows: int, dims: int | None = None, dtype: str | None = None) -> bool:
    """Whether `path` holds a whole embedding shard of `rows` rows (and `dims`/`dtype` when given)."""
    try:
        arr = np.load(path, mmap_mode="r")
    except (OSError, ValueError):
        return False
    return (arr.ndim == 2 and arr.shape[0] == rows and (dims is None or arr.shape[1] == dims)
            and (dtype is None or arr.dtype == np.dtype(dtype)))


# -------------------------------------------------------------------------------------------------- ingestion


class ShardRecord(Model):
    name: str
    rows: int
    sha256: str
    next_doc: int = Field(description="index of the first document not wholly in this or an earlier shard")
    next_offset: int = Field(description="passages of document `next_doc` already in this or an earlier shard")


class IngestState(Model):
    """passages/ingest.json: finished passage shards and where the document stream resumes after them."""

    source: str
    fingerprint: str = Field(description="what decides the passages (source hash, windowing); a change starts over")
    shard_size: int
    shards: list[ShardRecord] = Field(default_factory=list)
    done: bool = False


# a document source: docs(start) yields (doc index, passage rows) for documents start, start+1, ...
DocStream = Callable[[int], Iterator[tuple[int, list[dict[str, Any]]]]]


def load_ingest_state(passages_dir: Path, source: str, fingerprint: str, shard_size: int) -> IngestState:
    """The recorded state when it matches and its shards are intact on disk; a shard whose file is missing or
    changed is dropped with every shard after it (they are rewritten)."""
    path = Path(passages_dir) / INGEST_STATE
    fresh = IngestState(source=source, fingerprint=fingerprint, shard_size=shard_size)
    if not path.exists():
        return fresh
    try:
        state = IngestState.model_validate_json(path.read_text())
    except ValueError:
        logger.warning("%s: unreadable, re-ingesting", path)
        return fresh
    if state.fingerprint != fingerprint or state.shard_size != shard_size:
        logger.warning("%s: built from another corpus or shard size; re-ingesting", path)
        return fresh
    kept: list[ShardRecord] = []
    for rec in state.shards:
        f = Path(passages_dir) / f"{rec.name}.parquet"
        if not f.exists() or sha256_file(f) != rec.sha256:
            logger.warning("%s: missing or changed; rewriting it and the shards after it", f)
            state.done = False
            break
        kept.append(rec)
    state.shards = kept
    return state


def iter_passage_shards(docs: DocStream, passages_dir: Path, *, source: str, fingerprint: str,
                        shard_size: int = 50_000) -> Iterator[tuple[Path, int, bool]]:
    """Cut the document stream into passage shards of `shard_size` rows, streaming (at most one shard of rows in
    memory). Yields (shard path, rows, reused) for every shard in order, reusing the ones a previous run finished."""
    passages_dir = Path(passages_dir)
    passages_dir.mkdir(parents=True, exist_ok=True)
    state = load_ingest_state(passages_dir, source, fingerprint, shard_size)
    for rec in state.shards:
        yield passages_dir / f"{rec.name}.parquet", rec.rows, True
    if state.done:
        return
    start_doc, skip = (state.shards[-1].next_doc, state.shards[-1].next_offset) if state.shards else (0, 0)
    for stale in sorted(passages_dir.glob("part-*.parquet"))[len(state.shards):]:
        stale.unlink()  # written after the last recorded shard (killed before its record): redone below
    buf: list[dict[str, Any]] = []

    def flush(next_doc: int, next_offset: int) -> tuple[Path, int, bool]:
        i = len(state.shards)
        path = passages_dir / f"{shard_name(i)}.parquet"
        sha = write_passage_shard(path, buf)
        state.shards.append(ShardRecord(name=shard_name(i), rows=len(buf), sha256=sha, next_doc=next_doc,
                                        next_offset=next_offset))
        write_json(passages_dir / INGEST_STATE, state)
        out = (path, len(buf), False)
        buf.clear()
        return out

    last_doc = start_doc - 1
    for doc_index, rows in docs(start_doc):
        last_doc = doc_index
        offset = skip if doc_index == start_doc else 0
        for j in range(offset, len(rows)):
            buf.append(rows[j])
            if len(buf) >= shard_size:
                done_doc = j + 1 == len(rows)
                yield flush(doc_index + 1 if done_doc else doc_index, 0 if done_doc else j + 1)
        skip = 0
    if buf:
        yield flush(last_doc + 1, 0)
    state.done = True
    write_json(passages_dir / INGEST_STATE, state)
