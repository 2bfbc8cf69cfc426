"""The Ray engine: embed passage shards with a Ray Data actor pool, on a local Ray or on a cluster.

`RayEngine.embed_shards` has the LocalEngine contract (engines.Engine): every passage shard without a complete
embedding shard gets `out_dir/part-XXXXX.npy`, rows in the passage shard's order; finished shards are skipped, so a
killed build resumes by shard (and starts no Ray at all when nothing is left to do).

How the data moves. A feeder thread in the driver reads the pending passage shards (passage_id and text) one at
a time, cuts them into blocks of `block_rows` rows and hands the blocks, in order, to a `BlockStore` actor that holds
at most `inflight_blocks` of them. One Ray Data pipeline runs for the whole build, inside a `ShardStream` actor:
`from_items(block numbers).map_batches(StoreEncoder, compute=ActorPoolStrategy(size=actors), ...)`, where each
`StoreEncoder` actor holds one `ShardEncoder` (loaded once) and turns a block number into that block's embeddings.
With `preserve_order` the results come back in block order, and the stream actor cuts them at the shard row counts.
The driver takes one whole shard at a time, checks its passage ids against the shard file and writes it atomically
(shards.write_embedding_shard) while the next one is cut. Memory: the driver holds about two shards, the object store
`inflight_blocks` blocks of text plus Ray Data's bounded output queue -- independent of the corpus size.

Why this shape (measured with Ray 2.60):
- the driver reads the Parquet shards, not `ray.data.read_parquet`: the workers need not see the index folder (a
  `ray://` client on a laptop, a cluster without shared storage), and no read tasks compete with the encoder actors
  for CPUs (on a 2-CPU local Ray, `read_parquet` + two 1-CPU actors never finished; `read_parquet` on local paths
  also failed now and then importing fsspec's HTTP filesystem in its listing threads when aiohttp is missing);
- the blocks are fed lazily through an actor instead of a Dataset built over all of them (which would need the whole
  corpus text in the object store) or one Dataset per group of shards (which restarts the actor pool -- about 15 s
  of torch + model loading on 2 CPUs -- per group);
- the Dataset executes in an actor, not in the driver: Ray Data cannot execute a Dataset from a Ray Client
  (`'Worker' object has no attribute 'core_worker'`), and Ray Client has no streaming generators, so an actor with a
  `next_shard()` method is what works the same for a local Ray, a joined cluster and `ray://`.

Byte-identical to LocalEngine: `ShardEncoder` embeds each row independently of its batch and with a fixed torch
thread count (`EncoderSpec.threads`), so a row's bytes do not depend on the actor or block it lands in.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import re
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from claimscope.errors import BadSettings, ClaimscopeError
from claimscope.types import EncoderSpec
from claimscope.verify.corpus.engines import PassageProgress, pending_shards
from claimscope.verify.corpus.shards import embedding_shard_path, read_passage_shard, write_embedding_shard

logger = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'claimscope[ray]'"
PROBE_SECONDS = 5.0
IN_FLIGHT = 2  # blocks dispatched to one encoder actor at a time (Ray Data's default for one-call actors)

Todo = tuple[Path, Path, int]  # passage shard, embedding shard, rows


class RayClusterUnreachable(ClaimscopeError):
    """The Ray cluster named by --ray-address / RAY_ADDRESS could not be joined, or a local Ray not started."""


class RayEngineError(ClaimscopeError):
    """The Ray pipeline failed, or returned something other than the passages it was given."""


def import_ray() -> Any:
    """`ray` with Ray Data, or a one-line BadSettings saying how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as e:
        raise BadSettings("--engine ray", f"needs Ray Data ({e.name or 'ray'} not installed): {INSTALL_HINT}") from e
    return ray


def ray_installed() -> bool:
    try:
        return importlib.util.find_spec("ray") is not None and importlib.util.find_spec("ray.data") is not None
    except (ImportError, ValueError):
        return False


def probe_address(address: str, timeout: float = PROBE_SECONDS) -> None:
    """Fail fast, with one line, when `host:port` or `ray://host:port` does not accept TCP connections (ray.init
    itself retries for 30 s or more before giving up). "auto" and addresses without a port are left to Ray."""
    parts = urlsplit(address if "://" in address else f"gcs://{address}")
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        raise RayClusterUnreachable(address, "not a Ray address (host:port, ray://host:10001 or auto)") from None
    if not host or port is None:
        return
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as e:
        what = "the Ray client server" if parts.scheme == "ray" else "the Ray cluster (GCS)"
        raise RayClusterUnreachable(address, f"cannot reach {what} at {host}:{port} ({e.strerror or e}); start one "
                                             "with `ray start --head` or check --ray-address / RAY_ADDRESS") from None


def _token_auth() -> None:
    """Clusters started by `ray start` on Ray 2.60 want a token; a driver joining one (by GCS address or `ray://`)
    sends it only in token mode, which it does not switch on by itself when ~/.ray/auth_token or RAY_AUTH_TOKEN
    holds one. Do what ray.init does for a new local cluster; RAY_AUTH_MODE, when set, wins."""
    try:
        from ray._private.authentication.authentication_token_setup import (
            maybe_enable_token_auth_if_token_available,
        )
    except ImportError:  # another Ray version: nothing to do, or the user sets RAY_AUTH_MODE
        return
    maybe_enable_token_auth_if_token_available(warn_if_disabled=False)


@contextlib.contextmanager
def _quiet_ray() -> Iterator[None]:
    """Ray's console notices (token mode, deprecations) off while we connect; they still go to Ray's log files."""
    lg = logging.getLogger("ray")
    level = lg.level
    lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        lg.setLevel(level)


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_RAISED = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit)\b.*: ")


def _ray_cause(err: BaseException) -> str:
    """The line naming what went wrong inside Ray (an actor's traceback ends with it), else the first line."""
    text = _ANSI.sub("", str(getattr(err, "cause", None) or err))
    raised = [line for line in text.splitlines() if _RAISED.match(line)]
    return raised[-1] if raised else _first_line(err)


class RayEngine:
    """Embed passage shards with Ray Data: `actors` actors, each holding one ShardEncoder.

    Args:
        address: None starts a local Ray with `num_cpus` CPUs for this call and shuts it down afterwards (or joins
            the cluster named by RAY_ADDRESS when that is set); "auto" joins the cluster started on this machine with
            `ray start`; "host:6379" joins a cluster's GCS from one of its nodes; "ray://host:10001" connects
            through Ray Client from anywhere. When this process is already connected to Ray, that connection is used.
        num_cpus: CPUs of the local Ray (default: all); ignored when joining a cluster.
        num_gpus: GPUs per actor (0: CPU actors); the EncoderSpec's device must then be a GPU ("cuda").
        actors: actor pool size (default: as many as the cluster's CPUs / GPUs allow).
        cpus_per_actor: CPUs reserved per actor (default: the EncoderSpec's torch threads; 1 for GPU actors).
        block_rows: rows per block and per actor call (larger blocks fill the encoder's exact-length batches better).
        inflight_blocks: blocks read ahead into the object store (default: 4 per actor).
        progress: a rich progress bar counting passages.
    """

    name = "ray"

    def __init__(self, address: str | None = None, num_cpus: int | None = None, num_gpus: float = 0.0,
                 actors: int | None = None, cpus_per_actor: float | None = None, block_rows: int = 2048,
                 inflight_blocks: int | None = None, progress: bool = True) -> None:
        if not ray_installed():  # before a long ingestion, not after it
            raise BadSettings("--engine ray", f"needs Ray Data (not installed): {INSTALL_HINT}")
        if actors is not None and actors < 1:
            raise BadSettings("--ray-actors", f"needs at least 1 actor, got {actors}")
        if num_gpus < 0:
            raise BadSettings("--ray-gpus-per-actor", f"cannot be negative, got {num_gpus}")
        if block_rows < 1 or (inflight_blocks is not None and inflight_blocks < 1):
            raise BadSettings("--engine ray", "block_rows and inflight_blocks must be positive")
        self.address = address
        self.num_cpus = num_cpus
        self.num_gpus = float(num_gpus)
        self.actors = actors
        self.cpus_per_actor = cpus_per_actor
        self.block_rows = block_rows
        self.inflight_blocks = inflight_blocks
        self.progress = progress
        self.last_run: dict[str, float] = {}  # seconds of the last embed_shards (connect, embed), for benchmarks

    def describe(self) -> str:
        where = self._target() or f"local(num_cpus={self.num_cpus or os.cpu_count()})"
        return (f"ray(address={where}, actors={self.actors or 'auto'}, gpus_per_actor={self.num_gpus:g}, "
                f"block_rows={self.block_rows})")

    def _target(self) -> str | None:
        """The cluster to join, or None for a Ray started here."""
        address = self.address or os.environ.get("RAY_ADDRESS") or None
        return None if address in (None, "local") else address

    # ------------------------------------------------------------------------------------------------ connection

    @contextlib.contextmanager
    def session(self) -> Iterator[Any]:
        """Connected to Ray for the block: reuses a connection this process already has, else starts a local Ray or
        joins the cluster; disconnects (and stops the local Ray) afterwards only if it connected."""
        ray = import_ray()
        if ray.is_initialized():
            logger.info("using the Ray this process is already connected to (address and num_cpus not applied)")
            yield ray
            return
        target = self._target()
        kwargs: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.ERROR}
        if target is None:
            kwargs.update(num_cpus=self.num_cpus or os.cpu_count() or 1, include_dashboard=False)
        else:
            if self.num_cpus:
                logger.warning("num_cpus=%s ignored: joining the cluster at %s", self.num_cpus, target)
            probe_address(target)
        try:
            with _quiet_ray():
                if target:
                    _token_auth()
                ray.init(address=target or "local", **kwargs)  # "local": a new Ray even if `ray start` ran here
        except (ConnectionError, TimeoutError, RuntimeError, ValueError) as e:
            raise RayClusterUnreachable(target or "local Ray", f"cannot start or join Ray: {_first_line(e)}") from e
        try:
            res = ray.cluster_resources()
            logger.info("Ray %s: %s", "joined" if target else "started",
                        ", ".join(f"{k}={res[k]:g}" for k in ("CPU", "GPU") if k in res) or "no resources")
            yield ray
        finally:
            ray.shutdown()

    def _pool_size(self, ray: Any, cpus_per_actor: float) -> int:
        res = ray.cluster_resources()
        if self.num_gpus > 0:
            if res.get("GPU", 0) < self.num_gpus:
                raise RayEngineError("--ray-gpus-per-actor", f"the Ray cluster has {res.get('GPU', 0):g} GPUs, "
                                                             f"an actor needs {self.num_gpus:g}")
            return self.actors or max(1, int(res.get("GPU", 0) // self.num_gpus))
        return self.actors or max(1, int(res.get("CPU", 1) // max(cpus_per_actor, 1e-9)))

    def _actor_spec(self, encoder: EncoderSpec) -> tuple[dict[str, Any], float]:
        """ShardEncoder constructor kwargs for the actors, and the CPUs each reserves. The device is the
        EncoderSpec's (it is part of the index's encoder settings, so vectors from two devices never mix in one
        index): GPU actors need a GPU device, and a GPU device needs GPU actors."""
        on_gpu = not encoder.device.startswith("cpu")
        if self.num_gpus > 0 and not on_gpu:
            raise BadSettings("--ray-gpus-per-actor", "GPU actors need the encoder on the GPU: add --device cuda")
        if on_gpu and self.num_gpus == 0:
            raise BadSettings("--device", f"{encoder.device} on Ray needs GPUs per actor: add --ray-gpus-per-actor 1")
        spec = {"model": encoder.model, "precision": encoder.precision, "batch_size": encoder.batch_size,
                "device": encoder.device, "threads": encoder.threads}
        if self.cpus_per_actor is not None:
            return spec, self.cpus_per_actor
        return spec, 1.0 if on_gpu else float(encoder.threads)

    # ------------------------------------------------------------------------------------------------- embedding

    def embed_shards(self, passage_shards: list[Path], out_dir: Path, encoder: EncoderSpec,
                     on_shard: Callable[[Path, int], None] | None = None) -> list[Path]:
        """Write the missing embedding shards under `out_dir`; return all embedding shard paths in order."""
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        todo = pending_shards(passage_shards, out_dir, encoder)
        outs = [embedding_shard_path(out_dir, ps) for ps in passage_shards]
        self.last_run = {}
        rows = [t for t in todo if t[2] > 0]
        dims = None
        if rows:
            total = sum(r for _, _, r in rows)
            spec, cpus = self._actor_spec(encoder)
            t0 = time.perf_counter()
            with self.session() as ray:
                self.last_run["connect_seconds"] = round(time.perf_counter() - t0, 2)
                size = self._pool_size(ray, cpus)
                logger.info("embedding %d of %d shards (%d passages) with %s: %d actors x (%g CPU, %g GPU)",
                            len(rows), len(passage_shards), total, self.describe(), size, cpus, self.num_gpus)
                t1 = time.perf_counter()
                with PassageProgress(self.progress, "embedding (ray)", total) as advance:
                    dims = self._run(ray, rows, spec, encoder.dtype, size, cpus, advance, on_shard)
                self.last_run["embed_seconds"] = round(time.perf_counter() - t1, 2)
        self._write_empty([t for t in todo if t[2] == 0], encoder, dims, on_shard)
        return outs

    def _run(self, ray: Any, todo: list[Todo], spec: dict[str, Any], dtype: str, size: int, cpus: float,
             advance: Callable[[int], None], on_shard: Callable[[Path, int], None] | None) -> int:
        """Embed the (non-empty) shards of `todo` and write them; returns the embedding width."""
        blocks_per = [-(-rows // self.block_rows) for _, _, rows in todo]
        store = ray.remote(BlockStore).options(num_cpus=0, max_restarts=0).remote()
        stream = ray.remote(ShardStream).options(num_cpus=0, max_restarts=0).remote(
            store, [rows for _, _, rows in todo], sum(blocks_per), spec, max(1, min(size, sum(blocks_per))), cpus,
            self.num_gpus)
        # an actor waiting in BlockStore.take holds up the blocks queued behind it, so the store must have room for
        # every block dispatched at once (actors x IN_FLIGHT) or the pipeline could wait on itself
        capacity = max(self.inflight_blocks or 4 * size, IN_FLIGHT * size + 2)
        feeder = _Feeder(ray, store, todo, self.block_rows, capacity)
        dims = 0
        try:
            feeder.start()
            pending = stream.next_shard.remote()
            for k, (ps, out, rows) in enumerate(todo):
                ids, emb = self._wait(ray, pending, feeder, ps)
                if k + 1 < len(todo):
                    pending = stream.next_shard.remote()  # the next shard is cut while this one is written
                check_rows(ps, ids, feeder.ids(k))
                dims = int(emb.shape[1])
                write_embedding_shard(out, emb, dtype=dtype)
                advance(rows)
                if on_shard:
                    on_shard(out, rows)
        finally:
            feeder.stop()
            for actor in (stream, store):
                ray.kill(actor)
        return dims

    @staticmethod
    def _wait(ray: Any, ref: Any, feeder: _Feeder, ps: Path) -> tuple[np.ndarray, np.ndarray]:
        """The shard result behind `ref`; a feeder failure (an unreadable shard) or a Ray failure as one line."""
        while not ray.wait([ref], timeout=1.0)[0]:
            feeder.raise_error()
        try:
            ids, emb = ray.get(ref)
        except ray.exceptions.RayError as e:
            feeder.raise_error()
            raise RayEngineError(str(ps), f"Ray failed embedding this shard: {_ray_cause(e)}") from e
        return ids, emb

    @staticmethod
    def _write_empty(empty: list[Todo], encoder: EncoderSpec, dims: int | None,
                     on_shard: Callable[[Path, int], None] | None) -> None:
        """Shards without rows (never sent to Ray) get a [0, dims] embedding shard."""
        if not empty:
            return
        if not dims:
            from claimscope.verify.corpus.encode import ShardEncoder

            dims = ShardEncoder.from_spec(encoder).dims
        for _, out, _ in empty:
            write_embedding_shard(out, np.zeros((0, dims), dtype=np.float32), dtype=encoder.dtype)
            if on_shard:
                on_shard(out, 0)


def check_rows(passage_shard: Path, got: np.ndarray, want: np.ndarray) -> None:
    """The embedded rows are the shard's passages in the shard's order, or a RayEngineError naming the first
    difference."""
    got, want = np.asarray(got).astype(str), np.asarray(want).astype(str)
    if got.shape != want.shape:
        raise RayEngineError(str(passage_shard), f"{len(got)} rows came back for {len(want)} passages")
    if not np.array_equal(got, want):
        bad = int(np.argmax(got != want))
        raise RayEngineError(str(passage_shard), f"row {bad} came back as passage {str(got[bad])!r}, "
                                                 f"expected {str(want[bad])!r}")


class _Feeder:
    """Driver thread: reads the shards in order and puts their blocks into the BlockStore, waiting while it is full.
    Keeps each shard's passage ids for the row check, dropped once the shard is checked."""

    def __init__(self, ray: Any, store: Any, todo: list[Todo], block_rows: int, capacity: int) -> None:
        import threading

        self._ray, self._store, self._todo = ray, store, todo
        self._block_rows, self._capacity = block_rows, capacity
        self._ids: dict[int, np.ndarray] = {}
        self._ready = threading.Condition()
        self._stopping = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._feed, name="ray-engine-feeder", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=10)

    def _feed(self) -> None:
        try:
            n = 0
            for k, (ps, _, _) in enumerate(self._todo):
                table = read_passage_shard(ps, ["passage_id", "text"])
                with self._ready:
                    self._ids[k] = table.column("passage_id").to_numpy(zero_copy_only=False)
                    self._ready.notify_all()
                for s in range(0, table.num_rows, self._block_rows):
                    while not self._ray.get(self._store.wait_room.remote(self._capacity, 1.0)):
                        if self._stopping.is_set():
                            return
                    ref = self._ray.put(table.slice(s, self._block_rows))
                    self._ray.get(self._store.put.remote(n, [ref]))  # in a list: the store keeps the reference
                    del ref
                    n += 1
                del table
        except BaseException as e:  # handed to the driver's main thread
            with self._ready:
                self._error = e
                self._ready.notify_all()

    def raise_error(self) -> None:
        if self._error is not None:
            raise self._error

    def ids(self, k: int) -> np.ndarray:
        with self._ready:
            while k not in self._ids:
                self.raise_error()
                self._ready.wait(timeout=1.0)
            return self._ids.pop(k)


class BlockStore:
    """Ray actor (async, no CPUs): blocks of passages by number, put by the driver's feeder and taken, once each, by
    the encoder actors; holding at most the feeder's capacity."""

    def __init__(self) -> None:
        import asyncio

        self._blocks: dict[int, Any] = {}
        self._changed = asyncio.Condition()

    async def put(self, n: int, ref: list[Any]) -> None:
        async with self._changed:
            self._blocks[n] = ref[0]
            self._changed.notify_all()

    async def take(self, n: int) -> list[Any]:
        async with self._changed:
            await self._changed.wait_for(lambda: n in self._blocks)
            ref = self._blocks.pop(n)
            self._changed.notify_all()
            return [ref]

    async def wait_room(self, capacity: int, timeout: float) -> bool:
        """True once fewer than `capacity` blocks are held; False after `timeout` seconds."""
        import asyncio

        async with self._changed:
            try:
                await asyncio.wait_for(self._changed.wait_for(lambda: len(self._blocks) < capacity), timeout)
            except TimeoutError:
                return False
            return True


class StoreEncoder:
    """Ray Data actor: a ShardEncoder (the model, loaded once) fed block numbers; each call fetches its block from
    the BlockStore and returns the block's passage ids and embeddings."""

    def __init__(self, store: Any, **spec: Any) -> None:
        from claimscope.verify.corpus.encode import ShardEncoder

        self._store = store
        self._encoder = ShardEncoder(**spec)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import pyarrow as pa
        import ray

        tables = []
        for n in batch["block"]:
            ref = ray.get(self._store.take.remote(int(n)))[0]
            tables.append(ray.get(ref))
        table = pa.concat_tables(tables)
        return self._encoder({"passage_id": table.column("passage_id").to_numpy(zero_copy_only=False),
                              "text": table.column("text").to_pylist()})


class ShardStream:
    """Runs in the cluster as a Ray actor holding no CPUs: the one Ray Data pipeline of a build (block numbers ->
    StoreEncoder actors), cut back into shards. `next_shard()` returns the next shard's (passage ids, float32
    embeddings), in order."""

    def __init__(self, store: Any, counts: list[int], blocks: int, spec: dict[str, Any], actors: int, cpus: float,
                 gpus: float) -> None:
        import ray.data
        from ray.data import ActorPoolStrategy

        ctx = ray.data.DataContext.get_current()
        ctx.execution_options.preserve_order = True  # results in block order: what lets us cut at shard boundaries
        ctx.enable_progress_bars = False
        ctx.enable_auto_log_stats = False
        ctx.execution_options.actor_locality_enabled = False  # dispatch blocks in order (see RayEngine._run)
        pool = ActorPoolStrategy(size=actors, max_tasks_in_flight_per_actor=IN_FLIGHT)
        ds = ray.data.from_items([{"block": n} for n in range(blocks)], override_num_blocks=blocks).map_batches(
            StoreEncoder, fn_constructor_kwargs={"store": store, **spec}, compute=pool,
            batch_size=1, batch_format="numpy", num_cpus=cpus, num_gpus=gpus or None)
        self._batches = iter(ds.iter_batches(batch_size=None, batch_format="numpy", prefetch_batches=2))
        self._counts = list(counts)
        self._ids: list[np.ndarray] = []
        self._embs: list[np.ndarray] = []
        self._have = 0

    def next_shard(self) -> tuple[np.ndarray, np.ndarray]:
        if not self._counts:
            raise RayEngineError("ray engine", "asked for more shards than the build has")
        need = self._counts.pop(0)
        while self._have < need:
            try:
                batch = next(self._batches)
            except StopIteration:
                raise RayEngineError("ray engine", f"only {self._have} of {need} rows came back") from None
            emb = np.asarray(batch["embedding"], dtype=np.float32)
            self._ids.append(np.asarray(batch["passage_id"]))
            self._embs.append(emb.reshape(len(emb), -1))
            self._have += len(emb)
        ids, embs = np.concatenate(self._ids), np.concatenate(self._embs)
        self._ids, self._embs, self._have = [ids[need:]], [embs[need:]], len(ids) - need
        return ids[:need], embs[:need]
