"""`claimscope index build`: corpus -> passage shards (with each paper's title) -> embedding shards (local or Ray
engine) -> BM25 per shard -> dense ANN index -> title vectors (titles/) -> manifest.json. Every phase skips the
work a previous (killed) run finished; manifest.json is written last, so its presence means a complete index.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from claimscope.errors import BadRunDir, BadSettings
from claimscope.rundir import sha256_file, sweep_stale_temps, write_json
from claimscope.types import AnnInfo, CorpusIndexManifest, CorpusShard, EncoderSpec
from claimscope.verify.corpus.ann import (
    ANN_DIR,
    EXACT_MAX,
    INFO_FILE,
    MEMORY_BUDGET,
    EmbeddingShards,
    build_ann,
    choose_kind,
)
from claimscope.verify.corpus.bm25 import BM25_DIR, bm25_shard_dir, build_shard_bm25
from claimscope.verify.corpus.engines import Engine, PassageProgress, pending_shards
from claimscope.verify.corpus.shards import (
    EMBEDDINGS,
    PASSAGES,
    embedding_shard_path,
    iter_passage_shards,
    read_passage_shard,
)
from claimscope.verify.corpus.sources import CorpusSource
from claimscope.verify.corpus.titles import TITLES_DIR, load_titles

logger = logging.getLogger(__name__)

MANIFEST = "manifest.json"
PSEUDO_QUERY_WORDS = 12
ENCODER_FILE = "encoder.json"
BUILT_FOR = "built_for.json"


class PeakRSS:
    """Peak resident memory (this process + its children) while the block runs, sampled every 20 ms."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _rss(self) -> int:
        import psutil

        me = psutil.Process()
        total = me.memory_info().rss
        for child in me.children(recursive=True):
            try:
                total += child.memory_info().rss
            except psutil.Error:
                continue
        return int(total)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self._rss())

    def __enter__(self) -> PeakRSS:
        self.peak = self._rss()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.peak = max(self.peak, self._rss())

    @property
    def mb(self) -> float:
        return round(self.peak / 2**20, 1)


def dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file()) if Path(path).exists() else 0


def build_index(corpus: Path, out: Path, *, engine: Engine, encoder: EncoderSpec, shard_size: int = 50_000,
                ann: str = "auto", exact_max: int = EXACT_MAX, memory_budget: int = MEMORY_BUDGET,
                window: int | None = None, workers: int = 1, recall_queries: int = 200,
                tune_queries: Sequence[str] | None = None, progress: bool = True,
                on_phase: Callable[[str, dict[str, float]], None] | None = None) -> CorpusIndexManifest:
    """Build (or finish building) a corpus index in `out`; returns its manifest. See the module doc."""
    from datetime import UTC, datetime

    if shard_size < 1:
        raise BadSettings("--shard-size", f"must be at least 1 passage per shard, got {shard_size}")
    out = Path(out)
    other = _not_a_corpus_index(out)
    if other:
        raise BadRunDir(str(out), f"{other}; choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    sweep_stale_temps(out)
    source = CorpusSource(Path(corpus), window=window)
    stats: dict[str, float] = {}

    def phase_done(name: str, t0: float, rss: PeakRSS, **extra: float) -> None:
        stats[f"{name}_seconds"] = round(time.perf_counter() - t0, 2)
        stats[f"{name}_peak_rss_mb"] = rss.mb
        stats.update({f"{name}_{k}": v for k, v in extra.items()})
        if on_phase:
            on_phase(name, stats)

    # 1. passages -> shards (streaming)
    t0 = time.perf_counter()
    with PeakRSS() as rss, PassageProgress(progress, "passages", None) as advance:
        shard_paths, rows = [], []
        written = 0
        for path, n, reused in iter_passage_shards(source.stream, out / PASSAGES, source=str(corpus),
                                                   fingerprint=source.fingerprint(), shard_size=shard_size):
            shard_paths.append(path)
            rows.append(n)
            written += 0 if reused else n
            if not reused:  # what was derived from an earlier shard of this name is stale
                embedding_shard_path(out / EMBEDDINGS, path).unlink(missing_ok=True)
                shutil.rmtree(bm25_shard_dir(out, path), ignore_errors=True)
            advance(n)
    total = sum(rows)
    if total == 0:
        raise BadRunDir(str(corpus), "no passages in the corpus")
    _drop_shards_beyond(out, {Path(p).stem for p in shard_paths})
    secs = time.perf_counter() - t0
    phase_done("ingest", t0, rss, passages=total, written=written,
               passages_per_s=round(written / secs, 1) if written else 0.0)
    logger.info("%d passages in %d shards (%d written now)", total, len(shard_paths), written)

    # 2. paper -> shards map
    paper_shards: dict[str, list[int]] = {}
    for i, path in enumerate(shard_paths):
        for paper in set(read_passage_shard(path, ["paper_id"]).column("paper_id").to_pylist()):
            paper_shards.setdefault(paper, []).append(i)

    # 3. embeddings
    emb_dir = out / EMBEDDINGS
    _forget_if_changed(emb_dir, ENCODER_FILE, encoder.model_dump_json(), also=[out / ANN_DIR])
    t0 = time.perf_counter()
    with PeakRSS() as rss:
        todo = {p for p, _, _ in pending_shards(shard_paths, emb_dir, encoder)}
        emb_paths = engine.embed_shards(shard_paths, emb_dir, encoder)
    embedded = sum(n for p, n in zip(shard_paths, rows, strict=True) if p in todo)
    secs = time.perf_counter() - t0
    phase_done("embed", t0, rss, passages=embedded, passages_per_s=round(embedded / secs, 1) if embedded else 0.0)

    # 4. BM25 per shard
    t0 = time.perf_counter()
    with PeakRSS() as rss:
        _build_bm25(out, shard_paths, workers, progress)
    phase_done("bm25", t0, rss)

    # 5. dense index
    shards_meta = []
    first = 0
    for path, n, ep in zip(shard_paths, rows, emb_paths, strict=True):
        shards_meta.append(CorpusShard(name=path.stem, rows=n, first_row=first, passages_sha256=sha256_file(path),
                                       embeddings_sha256=sha256_file(ep)))
        first += n
    corpus_hash = hashlib.sha256("".join(s.passages_sha256 + (s.embeddings_sha256 or "")
                                         for s in shards_meta).encode()).hexdigest()
    t0 = time.perf_counter()
    with PeakRSS() as rss:
        embeddings = EmbeddingShards(emb_paths)
        wanted = {"corpus_hash": corpus_hash, "ann": ann, "exact_max": exact_max, "memory_budget": memory_budget,
                  "tune": hashlib.sha256("\n".join(tune_queries).encode()).hexdigest() if tune_queries else "pseudo"}
        info = _reuse_ann(out, wanted)
        if info is None:
            q_vecs, label = None, ""
            if choose_kind(total, embeddings.dims, ann, exact_max=exact_max, memory_budget=memory_budget)[0] != "flat":
                q_vecs, label = _recall_queries(shard_paths, rows, encoder, recall_queries, tune_queries)
            info = build_ann(out, embeddings, ann, exact_max=exact_max, memory_budget=memory_budget,
                             recall_queries=recall_queries, queries=q_vecs, queries_label=label)
            write_json(out / ANN_DIR / BUILT_FOR, wanted)
    phase_done("ann", t0, rss)

    # 6. paper titles (the passage shards' title column) embedded with the index's encoder, cached in titles/
    t0 = time.perf_counter()
    with PeakRSS() as rss:
        titles = load_titles(out, shard_paths, corpus_hash, encoder, _title_encoder(encoder), embeddings.dims)
    phase_done("titles", t0, rss, papers=len(titles.papers))
    if titles.missing_shards:
        logger.warning("%d of %d passage shards have no paper titles (ingested before titles were stored); delete "
                       "%s to re-ingest them", titles.missing_shards, len(shard_paths), out / PASSAGES)

    stats["passages_bytes"] = dir_bytes(out / PASSAGES)
    stats["embeddings_bytes"] = dir_bytes(emb_dir)
    stats["bm25_bytes"] = dir_bytes(out / "bm25")
    stats["ann_bytes"] = dir_bytes(out / ANN_DIR)
    stats["titles_bytes"] = dir_bytes(out / TITLES_DIR)
    stats["index_bytes"] = sum(stats[k] for k in ("passages_bytes", "embeddings_bytes", "bm25_bytes", "ann_bytes",
                                                  "titles_bytes"))
    if source.skipped:
        stats["skipped_documents"] = len(source.skipped)
    manifest = CorpusIndexManifest(
        created=datetime.now(UTC).isoformat(timespec="seconds"), source=str(corpus), source_kind=source.kind,
        corpus_hash=corpus_hash, encoder=encoder, model_sha256=_model_sha(encoder.model), dims=embeddings.dims,
        count=total, window_sentences=source.window, shard_size=shard_size, shards=shards_meta,
        paper_shards=paper_shards, ann=info, engine=engine.describe(), stats=stats)
    write_json(out / MANIFEST, manifest)
    return manifest


def _not_a_corpus_index(folder: Path) -> str | None:
    """How `folder` is something else than a corpus index, or None (a corpus index, a damaged one, or nothing): a run's
    evidence index (claimscope run / verify-scifact --index-dir) has its own manifest.json, a run folder run.json."""
    import json

    folder = Path(folder)
    if (folder / "run.json").exists():
        return "is a claimscope run folder, not a corpus index"
    try:
        data = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if isinstance(data, dict) and "shards" not in data and "source_kind" not in data:
        if "passage_ids" in data:
            return "holds a run's evidence index (claimscope run, verify-scifact --index-dir), not a corpus index"
        return "holds a manifest.json that is not a corpus index's"
    return None


def _drop_shards_beyond(out: Path, kept: set[str]) -> None:
    """Remove the embedding and BM25 shards of passage shards this build no longer has (an earlier build of a larger
    corpus in the same folder left them; they took disk and counted in index_bytes)."""
    stale = [f for f in (out / EMBEDDINGS).glob("part-*.npy") if f.stem not in kept]
    stale += [d for d in (out / BM25_DIR).glob("part-*") if d.name not in kept]
    for f in stale:
        if f.is_dir():
            shutil.rmtree(f, ignore_errors=True)
        else:
            f.unlink(missing_ok=True)
    if stale:
        logger.info("removed %d embedding/BM25 shards of an earlier, larger build", len(stale))


def load_manifest(index_dir: Path) -> CorpusIndexManifest:
    from claimscope.rundir import read_json

    path = Path(index_dir) / MANIFEST
    if not path.exists():
        raise BadRunDir(str(path), "missing; build the index first (claimscope index build CORPUS --out DIR)")
    other = _not_a_corpus_index(Path(index_dir))
    if other:
        raise BadRunDir(str(index_dir), f"{other}; build one with claimscope index build CORPUS --out DIR")
    return read_json(path, CorpusIndexManifest)


def _forget_if_changed(folder: Path, name: str, text: str, also: list[Path]) -> None:
    """Drop `folder` (and `also`) when it was made with other settings than `text`; then record `text`."""
    marker = folder / name
    if marker.exists() and marker.read_text() != text:
        logger.warning("%s was built with other encoder settings; re-embedding", folder)
        for f in [folder, *also]:
            shutil.rmtree(f, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    if not marker.exists():
        marker.write_text(text)


def pseudo_query(text: str, words: int = PSEUDO_QUERY_WORDS) -> str:
    """A claim-like query from a passage: its first `words` words."""
    return " ".join(text.split()[:words])


def _recall_queries(shard_paths: list[Path], rows: list[int], encoder: EncoderSpec, n: int,
                    given: Sequence[str] | None) -> tuple[np.ndarray, str]:
    """Query vectors for measuring the ANN recall: the given texts, or pseudo-queries made from sampled passages."""
    from claimscope.verify.corpus.encode import ShardEncoder

    if given:
        texts, label = list(given)[:n], f"{min(n, len(given))} given queries"
    else:
        picked = np.sort(np.random.default_rng(7).choice(sum(rows), size=min(n, sum(rows)), replace=False))
        texts, first = [], 0
        for path, count in zip(shard_paths, rows, strict=True):
            local = picked[(picked >= first) & (picked < first + count)] - first
            if len(local):
                column = read_passage_shard(path, ["text"]).column("text")
                texts += [pseudo_query(str(column[int(i)])) for i in local]
            first += count
        label = f"{len(texts)} pseudo-queries (first {PSEUDO_QUERY_WORDS} words of sampled passages)"
    return ShardEncoder.from_spec(encoder).encode(texts), label


def _reuse_ann(out: Path, wanted: dict[str, Any]) -> AnnInfo | None:
    import json

    try:
        if json.loads((out / ANN_DIR / BUILT_FOR).read_text()) == wanted:
            logger.info("reusing the dense index in %s", out / ANN_DIR)
            return AnnInfo.model_validate_json((out / ANN_DIR / INFO_FILE).read_text())
    except (OSError, ValueError):
        pass
    return None


def _build_bm25(out: Path, shard_paths: list[Path], workers: int, progress: bool) -> None:
    todo = [p for p in shard_paths if not (bm25_shard_dir(out, p) / "params.index.json").exists()]
    with PassageProgress(progress, "bm25", len(todo), unit="shards") as advance:
        if workers > 1 and len(todo) > 1:
            import multiprocessing as mp
            from concurrent.futures import ProcessPoolExecutor

            with ProcessPoolExecutor(min(workers, len(todo)), mp_context=mp.get_context("spawn")) as pool:
                for _ in pool.map(build_shard_bm25, todo, [bm25_shard_dir(out, p) for p in todo]):
                    advance(1)
        else:
            for p in todo:
                build_shard_bm25(p, bm25_shard_dir(out, p))
                advance(1)


def _title_encoder(encoder: EncoderSpec) -> Callable[[list[str]], np.ndarray]:
    def embed(texts: list[str]) -> np.ndarray:
        from claimscope.verify.corpus.encode import ShardEncoder

        return ShardEncoder.from_spec(encoder).encode(texts)

    return embed


def _model_sha(model: str) -> str | None:
    from claimscope.verify.corpus.encode import is_hash_model

    if is_hash_model(model):
        return None
    from claimscope.verify.embed import model_info

    return model_info(model, "embedder").sha256
