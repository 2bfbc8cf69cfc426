"""The Ray engine against the local engine on real SciFact passages: same embedding shards byte for byte (fp32), same
search results, resumable by shard, and clear one-line errors (no Ray installed, no cluster at the address).

The comparison test starts its own local 2-CPU Ray (about 25 s in all, most of it Ray and torch starting); the
resume and join-a-cluster tests are in the slow tier."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from claimscope.cli import main
from claimscope.errors import BadSettings
from claimscope.types import EncoderSpec
from claimscope.verify.corpus.build import build_index, load_manifest
from claimscope.verify.corpus.engines import LocalEngine, get_engine
from claimscope.verify.corpus.search import ShardedEvidenceIndex
from claimscope.verify.corpus.shards import iter_passage_shards, write_embedding_shard
from claimscope.verify.corpus.sources import CorpusSource

ray = pytest.importorskip("ray")
pytest.importorskip("ray.data")

from claimscope.verify.corpus.ray_engine import (  # noqa: E402
    RayClusterUnreachable,
    RayEngine,
    RayEngineError,
    check_rows,
    import_ray,
)

SAMPLE = Path(__file__).parents[2] / "fixtures" / "corpus" / "scifact_corpus_sample.jsonl"  # 60 SciFact abstracts
FP32 = EncoderSpec(precision="fp32", dtype="float32")
HASH = EncoderSpec(model="hash", dtype="float32")


def _corpus(tmp_path: Path, docs: int = 24) -> Path:
    """The first `docs` abstracts of the sample (24 -> about 200 sentence passages)."""
    path = tmp_path / "corpus.jsonl"
    path.write_text("".join(SAMPLE.read_text(encoding="utf-8").splitlines(keepends=True)[:docs]), encoding="utf-8")
    return path


def _passage_shards(corpus: Path, root: Path, shard_size: int) -> list[Path]:
    src = CorpusSource(corpus)
    return [p for p, _, _ in iter_passage_shards(src.stream, root / "passages", source=str(corpus),
                                                 fingerprint=src.fingerprint(), shard_size=shard_size)]


def _hits(index: ShardedEvidenceIndex, queries: list[str]) -> list[list[tuple[str, float]]]:
    return [[(h.passage.id, h.score) for h in hits] for hits in index.search_many(queries, 5)]


def test_ray_engine_writes_the_local_engines_bytes_and_search_results(tmp_path):
    assert not ray.is_initialized()
    corpus = _corpus(tmp_path)
    local = build_index(corpus, tmp_path / "local", engine=LocalEngine(1, progress=False), encoder=FP32,
                        shard_size=64, progress=False)
    # two actors, blocks of 24 rows: shards of 64 rows are cut across blocks and actors
    engine = RayEngine(num_cpus=2, actors=2, block_rows=24, progress=False)
    rayed = build_index(corpus, tmp_path / "ray", engine=engine, encoder=FP32, shard_size=64, progress=False)
    assert not ray.is_initialized(), "the local Ray it started is shut down"
    assert rayed.engine.startswith("ray(") and local.engine.startswith("local(")
    assert local.count == rayed.count >= 150 and len(rayed.shards) >= 3

    local_npy = sorted((tmp_path / "local" / "embeddings").glob("*.npy"))
    ray_npy = sorted((tmp_path / "ray" / "embeddings").glob("*.npy"))
    assert [p.name for p in local_npy] == [p.name for p in ray_npy] and len(ray_npy) == len(rayed.shards)
    for a, b in zip(local_npy, ray_npy, strict=True):
        assert a.read_bytes() == b.read_bytes(), f"{b.name} differs from the local engine's"
    assert [s.embeddings_sha256 for s in local.shards] == [s.embeddings_sha256 for s in rayed.shards]

    docs = [json.loads(line) for line in corpus.read_text().splitlines()[:12]]
    titles = [d["title"] for d in docs]
    a, b = ShardedEvidenceIndex(tmp_path / "local"), ShardedEvidenceIndex(tmp_path / "ray")
    ha, hb = _hits(a, titles), _hits(b, titles)
    assert ha == hb and all(len(h) == 5 for h in ha)
    top = [a.search(t, 1)[0].passage.paper for t in titles]  # real hits: a title finds its own abstract
    assert sum(p == f"scifact:{d['doc_id']}" for p, d in zip(top, docs, strict=True)) >= 10


def test_nothing_left_to_embed_starts_no_ray(tmp_path, monkeypatch):
    shards = _passage_shards(_corpus(tmp_path, 6), tmp_path, 20)
    done = LocalEngine(1, progress=False).embed_shards(shards, tmp_path / "emb", HASH)

    def no_ray(self):  # type: ignore[no-untyped-def]
        raise AssertionError("Ray was started although every shard was complete")

    monkeypatch.setattr(RayEngine, "session", no_ray)
    assert RayEngine(progress=False).embed_shards(shards, tmp_path / "emb", HASH) == done


@pytest.mark.parametrize("address", ["ray://127.0.0.1:1", "127.0.0.1:1"])
def test_unreachable_cluster_is_one_clear_line_and_quick(tmp_path, address):
    assert not ray.is_initialized()
    shards = _passage_shards(_corpus(tmp_path, 3), tmp_path, 50)
    t0 = time.perf_counter()
    with pytest.raises(RayClusterUnreachable) as err:
        RayEngine(address=address, progress=False).embed_shards(shards, tmp_path / "emb", HASH)
    assert time.perf_counter() - t0 < 10
    msg = str(err.value)
    assert msg.startswith(f"{address}: cannot reach") and "ray start --head" in msg and "\n" not in msg
    assert not list((tmp_path / "emb").glob("*.npy")) and not ray.is_initialized()


def test_ray_address_env_is_the_default_cluster(tmp_path, monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", "ray://127.0.0.1:1")
    engine = RayEngine(progress=False)
    assert "ray://127.0.0.1:1" in engine.describe()
    with pytest.raises(RayClusterUnreachable):
        engine.embed_shards(_passage_shards(_corpus(tmp_path, 2), tmp_path, 50), tmp_path / "emb", HASH)


def test_cli_unreachable_ray_address_exits_with_one_line(tmp_path, capsys):
    rc = main(["-q", "index", "build", str(_corpus(tmp_path, 3)), "--out", str(tmp_path / "idx"), "--embedder", "hash",
               "--engine", "ray", "--ray-address", "ray://127.0.0.1:1", "--ray-actors", "2"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "\n" not in err and "ray://127.0.0.1:1: cannot reach the Ray client server" in err


def test_missing_ray_names_the_extra_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(BadSettings, match=r"pip install 'claimscope\[ray\]'"):
        import_ray()
    with pytest.raises(BadSettings, match=r"pip install 'claimscope\[ray\]'"):
        get_engine("ray", address=None)


def test_get_engine_passes_the_ray_options():
    engine = get_engine("ray", address="auto", num_cpus=None, num_gpus=0.5, actors=3, workers=1, batch_size=64)
    assert isinstance(engine, RayEngine)
    assert (engine.address, engine.num_gpus, engine.actors) == ("auto", 0.5, 3)
    with pytest.raises(BadSettings):
        RayEngine(actors=0)


def test_gpu_actors_and_a_gpu_device_go_together(tmp_path):
    shards = _passage_shards(_corpus(tmp_path, 2), tmp_path, 50)
    with pytest.raises(BadSettings, match="add --device cuda"):
        RayEngine(num_gpus=1, progress=False).embed_shards(shards, tmp_path / "emb", HASH)
    with pytest.raises(BadSettings, match="add --ray-gpus-per-actor 1"):
        RayEngine(progress=False).embed_shards(shards, tmp_path / "emb", HASH.model_copy(update={"device": "cuda"}))
    assert not ray.is_initialized()


def test_rows_out_of_order_are_refused():
    want = np.array(["a", "b", "c"], dtype=object)
    check_rows(Path("part-00000.parquet"), np.array(["a", "b", "c"]), want)
    with pytest.raises(RayEngineError, match="row 1 came back as passage 'c', expected 'b'"):
        check_rows(Path("part-00000.parquet"), np.array(["a", "c", "b"]), want)
    with pytest.raises(RayEngineError, match="2 rows came back for 3 passages"):
        check_rows(Path("part-00000.parquet"), np.array(["a", "b"]), want)


# ------------------------------------------------------------------------------------------------------ slow tier


@pytest.fixture(scope="module")
def local_ray():
    """One local 2-CPU Ray for the slow tests of this module (RayEngine reuses a connection it finds)."""
    if ray.is_initialized():
        pytest.skip("Ray already initialised in this process")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, address="local")
    yield ray
    ray.shutdown()


@pytest.mark.slow
def test_resume_keeps_finished_shards_and_writes_the_rest(tmp_path, local_ray):
    shards = _passage_shards(_corpus(tmp_path, 40), tmp_path, 60)
    assert len(shards) >= 4
    local = LocalEngine(1, progress=False).embed_shards(shards, tmp_path / "local", HASH)
    out = tmp_path / "ray"
    # shard 1 already there (as a killed build leaves it): distinguishable from a recomputed one, still complete
    kept = -np.load(local[1])
    write_embedding_shard(out / local[1].name, kept)
    before = (out / local[1].name).stat().st_mtime_ns
    written = []
    paths = RayEngine(actors=2, block_rows=25, inflight_blocks=5, progress=False).embed_shards(
        shards, out, HASH, on_shard=lambda p, n: written.append(p.name))
    assert [p.name for p in paths] == [p.name for p in local]
    assert sorted(written) == sorted(p.name for i, p in enumerate(local) if i != 1)
    assert (out / local[1].name).stat().st_mtime_ns == before and np.array_equal(np.load(paths[1]), kept)
    for i, (a, b) in enumerate(zip(local, paths, strict=True)):
        if i != 1:
            assert a.read_bytes() == b.read_bytes()
    assert local_ray.is_initialized(), "a Ray connection it did not make is left alone"


@pytest.mark.slow
def test_actor_failure_is_one_line_naming_the_cause(tmp_path, local_ray):
    shards = _passage_shards(_corpus(tmp_path, 3), tmp_path, 50)
    with pytest.raises(RayEngineError, match=r"part-00000.parquet: Ray failed embedding this shard: "
                                             r"FileNotFoundError: .*/nonexistent/model"):
        RayEngine(actors=1, progress=False).embed_shards(shards, tmp_path / "emb",
                                                         EncoderSpec(model="/nonexistent/model"))


@pytest.mark.slow
def test_cli_ray_build_equals_local_build(tmp_path):
    corpus = _corpus(tmp_path, 20)
    common = ["-q", "index", "build", str(corpus), "--embedder", "hash", "--shard-size", "60", "--dtype", "float32"]
    assert main([*common, "--out", str(tmp_path / "local"), "--workers", "2"]) == 0
    assert main([*common, "--out", str(tmp_path / "ray"), "--engine", "ray", "--ray-num-cpus", "2"]) == 0
    local, rayed = load_manifest(tmp_path / "local"), load_manifest(tmp_path / "ray")
    assert rayed.engine.startswith("ray(address=local(num_cpus=2), actors=auto")
    assert [s.embeddings_sha256 for s in local.shards] == [s.embeddings_sha256 for s in rayed.shards]
    assert local.corpus_hash == rayed.corpus_hash


@pytest.mark.slow
def test_gpu_actors_on_a_cluster_without_gpus_fail_instead_of_waiting(tmp_path, local_ray):
    shards = _passage_shards(_corpus(tmp_path, 2), tmp_path, 50)
    with pytest.raises(RayEngineError, match="the Ray cluster has 0 GPUs, an actor needs 1"):
        RayEngine(num_gpus=1, progress=False).embed_shards(shards, tmp_path / "emb",
                                                           HASH.model_copy(update={"device": "cuda"}))


def _free_ports(n: int) -> list[int]:
    """n distinct free ports (all held open until chosen, so two calls cannot return the same one)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory):
    """A separate 2-CPU Ray cluster (`ray start --head --block`), stopped by the id of the process we started."""
    if ray.is_initialized():
        ray.shutdown()
    gcs, client = _free_ports(2)
    log = tmp_path_factory.mktemp("ray_head") / "head.log"
    exe = Path(sys.executable).with_name("ray")
    with open(log, "wb") as f:
        head = subprocess.Popen([str(exe), "start", "--head", f"--port={gcs}", f"--ray-client-server-port={client}",
                                 "--num-cpus=2", "--include-dashboard=false", "--disable-usage-stats", "--block"],
                                stdout=f, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.time() + 120
        while "will now block" not in log.read_text():  # printed once every head process has started
            assert head.poll() is None and time.time() < deadline, log.read_text()[-2000:]
            time.sleep(0.5)
        socket.create_connection(("127.0.0.1", client), timeout=5).close()
        yield {"gcs": f"127.0.0.1:{gcs}", "client": f"ray://127.0.0.1:{client}"}
    finally:
        head.send_signal(signal.SIGINT)  # `ray start --block` stops its cluster on SIGINT
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
            head.wait()


@pytest.mark.slow
@pytest.mark.parametrize("which", ["client", "gcs"])
def test_joining_a_cluster_writes_the_local_engines_bytes(tmp_path, ray_cluster, which):
    shards = _passage_shards(_corpus(tmp_path, 30), tmp_path, 70)
    local = LocalEngine(1, progress=False).embed_shards(shards, tmp_path / "local", HASH)
    engine = RayEngine(address=ray_cluster[which], block_rows=32, progress=False)
    paths = engine.embed_shards(shards, tmp_path / "ray", HASH)
    assert [a.read_bytes() for a in local] == [b.read_bytes() for b in paths]
    assert not ray.is_initialized(), "disconnected afterwards"
    assert engine.last_run["connect_seconds"] < 30
