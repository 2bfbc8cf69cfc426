"""Engines that embed passage shards: `LocalEngine` (a process pool on this machine) and, lazily, the Ray engine.

Every engine has the same contract (`Engine`): for each passage shard without a complete embedding shard, write
`out_dir/<shard>.npy` (rows in the passage shard's order, the dtype in the EncoderSpec) and return the embedding shard
paths in passage-shard order. Finished shards are skipped, so a killed build resumes. `ShardEncoder` embeds each row
independently of its batch, so the result is the same bytes for any number of workers and for either engine.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from claimscope.errors import BadSettings
from claimscope.types import EncoderSpec
from claimscope.verify.corpus.shards import (
    embedding_complete,
    embedding_shard_path,
    passage_shard_rows,
    read_passage_shard,
    write_embedding_shard,
)

logger = logging.getLogger(__name__)


@runtime_checkable
class Engine(Protocol):
    name: str

    def embed_shards(self, passage_shards: list[Path], out_dir: Path, encoder: EncoderSpec) -> list[Path]:
        """Write out_dir/part-XXXXX.npy for each passage shard lacking a complete one; return all, in order."""
        ...

    def describe(self) -> str:
        """The engine and its options, for the manifest."""
        ...


def pending_shards(passage_shards: list[Path], out_dir: Path, encoder: EncoderSpec) -> list[tuple[Path, Path, int]]:
    """(passage shard, embedding shard, rows) for the shards whose embeddings are missing or incomplete."""
    todo = []
    for ps in passage_shards:
        rows = passage_shard_rows(ps)
        out = embedding_shard_path(out_dir, ps)
        if not embedding_complete(out, rows, dtype=encoder.dtype):
            todo.append((ps, out, rows))
    return todo


def embed_one_shard(encoder: Any, passage_shard: Path, out_path: Path, dtype: str) -> int:
    """Embed one passage shard with a ShardEncoder and write its embedding shard; returns the rows written."""
    table = read_passage_shard(passage_shard, ["passage_id", "text"])
    result = encoder({"passage_id": table.column("passage_id").to_numpy(zero_copy_only=False),
                      "text": table.column("text").to_pylist()})
    write_embedding_shard(out_path, result["embedding"], dtype=dtype)
    return table.num_rows


# --------------------------------------------------------------------------------------------------- local engine

_worker_encoder: Any = None
_worker_dtype = "float32"


def _init_worker(spec_json: str) -> None:
    global _worker_encoder, _worker_dtype
    from claimscope.verify.corpus.encode import ShardEncoder, is_hash_model

    spec = EncoderSpec.model_validate_json(spec_json)
    if not is_hash_model(spec.model):  # the hash embedder needs no torch (and its ~400 MB)
        import torch

        torch.set_num_threads(spec.threads)
    _worker_encoder = ShardEncoder.from_spec(spec)
    _worker_dtype = spec.dtype


TASK_ROWS = 4096  # passages per worker task: whole row groups up to this many (larger tasks fill exact-length batches)


def _tasks(passage_shard: Path) -> list[list[int]]:
    """The shard's row groups cut into runs of about TASK_ROWS rows."""
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(passage_shard).metadata
    tasks: list[list[int]] = []
    rows = TASK_ROWS
    for g in range(meta.num_row_groups):
        if rows >= TASK_ROWS:
            tasks.append([])
            rows = 0
        tasks[-1].append(g)
        rows += meta.row_group(g).num_rows
    return tasks


def _work(passage_shard: str, groups: list[int]) -> np.ndarray:
    """Embeddings of some row groups of a passage shard (float32)."""
    import pyarrow.parquet as pq

    table = pq.ParquetFile(passage_shard).read_row_groups(groups, columns=["passage_id", "text"])
    return _worker_encoder({"passage_id": table.column("passage_id").to_numpy(zero_copy_only=False),
                            "text": table.column("text").to_pylist()})["embedding"]


class LocalEngine:
    """Embed shards on this machine: `workers` spawned processes (each holding the encoder, running
    `EncoderSpec.threads` torch threads) embed runs of the shards' Parquet row groups (about 4,096 passages), at most
    `max_in_flight` runs queued at once; each shard is written when its last group is back, so even one shard keeps
    every worker busy. A rich progress bar counts passages. With one worker the shards are embedded in this process."""

    name = "local"

    def __init__(self, workers: int = 1, max_in_flight: int | None = None, progress: bool = True) -> None:
        if workers < 1:
            raise BadSettings("--workers", f"needs at least 1 worker, got {workers}")
        self.workers = workers
        self.max_in_flight = max_in_flight or 2 * workers
        self.progress = progress

    def describe(self) -> str:
        return f"local(workers={self.workers})"

    def embed_shards(self, passage_shards: list[Path], out_dir: Path, encoder: EncoderSpec,
                     on_shard: Callable[[Path, int], None] | None = None) -> list[Path]:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        todo = pending_shards(passage_shards, out_dir, encoder)
        if todo:
            logger.info("embedding %d of %d shards (%d passages) with %s", len(todo), len(passage_shards),
                        sum(r for _, _, r in todo), self.describe())
        with PassageProgress(self.progress, "embedding", sum(r for _, _, r in todo)) as advance:
            if self.workers == 1:
                from claimscope.verify.corpus.encode import ShardEncoder

                enc = ShardEncoder.from_spec(encoder) if todo else None
                for ps, out, _ in todo:
                    n = embed_one_shard(enc, ps, out, encoder.dtype)
                    advance(n)
                    if on_shard:
                        on_shard(out, n)
            else:
                self._pool(todo, encoder, advance, on_shard)
        return [embedding_shard_path(out_dir, ps) for ps in passage_shards]

    def _pool(self, todo: list[tuple[Path, Path, int]], encoder: EncoderSpec, advance: Callable[[int], None],
              on_shard: Callable[[Path, int], None] | None) -> None:
        import multiprocessing as mp

        queue: list[tuple[Path, int, list[int]]] = []
        parts: dict[Path, list[np.ndarray | None]] = {}
        outs = {ps: out for ps, out, _ in todo}
        for ps, _, _ in todo:
            tasks = _tasks(ps)
            parts[ps] = [None] * len(tasks)
            queue += [(ps, i, groups) for i, groups in enumerate(tasks)]
        queue.reverse()
        with ProcessPoolExecutor(self.workers, mp_context=mp.get_context("spawn"), initializer=_init_worker,
                                 initargs=(encoder.model_dump_json(),)) as pool:
            running: dict[Future, tuple[Path, int]] = {}
            while queue or running:
                while queue and len(running) < self.max_in_flight:
                    ps, g, groups = queue.pop()
                    running[pool.submit(_work, str(ps), groups)] = (ps, g)
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for fut in done:
                    ps, g = running.pop(fut)
                    emb = fut.result()
                    parts[ps][g] = emb
                    advance(len(emb))
                    if all(p is not None for p in parts[ps]):
                        whole = np.vstack([p for p in parts.pop(ps) if p is not None])
                        write_embedding_shard(outs[ps], whole, dtype=encoder.dtype)
                        if on_shard:
                            on_shard(outs[ps], len(whole))


class PassageProgress:
    """A rich progress bar yielding `advance(n)` (total None: a running count); silent when disabled or there is
    nothing to do."""

    def __init__(self, enabled: bool, label: str, total: int | None, unit: str = "passages") -> None:
        self.enabled = enabled and (total is None or total > 0)
        self.label = label
        self.total = total
        self.unit = unit
        self._progress: Any = None

    def __enter__(self) -> Callable[[int], None]:
        if not self.enabled:
            return lambda n: None
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self._progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                  TextColumn(self.unit), TimeRemainingColumn(), transient=True)
        self._progress.start()
        task = self._progress.add_task(self.label, total=self.total)
        return lambda n: self._progress.advance(task, n)

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()


def get_engine(name: str = "local", **options: Any) -> Engine:
    """"local" -> LocalEngine(workers=...); "ray" -> verify.corpus.ray_engine.RayEngine(**options) (imported lazily,
    so Ray is needed only when asked for)."""
    if name == "local":
        allowed = {"workers", "max_in_flight", "progress"}
        return LocalEngine(**{k: v for k, v in options.items() if k in allowed and v is not None})
    if name == "ray":
        try:
            from claimscope.verify.corpus.ray_engine import RayEngine
        except ModuleNotFoundError as e:
            raise BadSettings("--engine ray",
                              f"needs Ray ({e.name} not installed): pip install 'claimscope[ray]'") from e
        import inspect

        if options.get("actors") is None and options.get("workers") is not None:
            options["actors"] = options["workers"]
        accepted = set(inspect.signature(RayEngine).parameters)
        kwargs = {k: v for k, v in options.items() if k in accepted and v is not None}
        return RayEngine(**kwargs)
    raise BadSettings("--engine", f"unknown engine {name!r}; choose local or ray")
