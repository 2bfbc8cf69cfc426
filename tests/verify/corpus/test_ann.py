"""The dense index: exact below a threshold, IVF / HNSW / IVF-PQ above it, and recall@10 measured against exact."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from claimscope.errors import BadSettings
from claimscope.types import AnnInfo
from claimscope.verify.corpus.ann import (
    ANN_DIR,
    INDEX_FILE,
    DenseIndex,
    EmbeddingShards,
    build_ann,
    choose_kind,
    exact_topk,
    recall_at,
)
from claimscope.verify.corpus.shards import write_embedding_shard


def _clustered(n: int, d: int = 48, seed: int = 0) -> np.ndarray:
    """Unit vectors around 40 fixed centres: structure like real embeddings, so an IVF index can reach high recall.
    `seed` draws other points around the same centres."""
    centres = np.random.default_rng(0).standard_normal((40, d))
    rng = np.random.default_rng(seed + 1)
    x = centres[rng.integers(0, 40, n)] + 0.35 * rng.standard_normal((n, d))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _shards(tmp: Path, x: np.ndarray, parts: int = 3, dtype: str = "float16") -> EmbeddingShards:
    paths = []
    for i, block in enumerate(np.array_split(x, parts)):
        paths.append(tmp / "embeddings" / f"part-{i:05d}.npy")
        write_embedding_shard(paths[-1], block, dtype=dtype)
    return EmbeddingShards(paths)


def test_choose_kind_switches_on_size_and_memory_budget():
    assert choose_kind(50_000, 384)[0] == "flat"
    assert choose_kind(200_000, 384)[0] == "ivf"  # 0.29 GiB of vectors fit the 2 GiB default
    assert choose_kind(2_000_000, 384)[0] == "ivfpq"  # 2.9 GiB do not
    assert choose_kind(200_000, 384, memory_budget=100 << 20)[0] == "ivfpq"
    assert choose_kind(10, 384, "hnsw") == ("hnsw", "requested")
    with pytest.raises(BadSettings, match="--ann"):
        choose_kind(10, 384, "lsh")


def test_exact_scan_matches_numpy(tmp_path):
    x = _clustered(3000)
    shards = _shards(tmp_path, x, dtype="float32")
    q = _clustered(5, seed=9)
    scores, rows = exact_topk(shards, q, 10)
    ref = q @ x.T
    assert np.array_equal(rows, np.argsort(-ref, axis=1, kind="stable")[:, :10])
    assert np.allclose(scores, np.sort(ref, axis=1)[:, ::-1][:, :10], atol=1e-5)


@pytest.mark.parametrize("kind", ["ivf", "hnsw", "ivfpq"])
def test_approximate_kinds_reach_the_recall_they_record(tmp_path, kind):
    x = _clustered(6000)
    shards = _shards(tmp_path, x)
    info = build_ann(tmp_path, shards, kind, recall_queries=100)
    assert info.kind == kind and info.recall_queries == 100 and info.recall_at_10 >= 0.95
    assert (tmp_path / ANN_DIR / INDEX_FILE).stat().st_size > 0 and info.bytes > 0
    # loaded from disk and asked fresh queries (new points, not corpus rows), it keeps that recall
    saved = AnnInfo.model_validate_json((tmp_path / ANN_DIR / "ann.json").read_text())
    dense = DenseIndex.load(tmp_path, shards, saved)
    assert recall_at(dense, _clustered(100, seed=5), 10) >= 0.9
    scores, rows = dense.search(x[:3], 5)
    assert list(rows[:, 0]) == [0, 1, 2] and np.all(np.diff(scores, axis=1) <= 1e-6)


def test_auto_is_exact_below_the_threshold_and_approximate_above(tmp_path):
    shards = _shards(tmp_path, _clustered(4000))
    flat = build_ann(tmp_path, shards, "auto", exact_max=5000)
    assert flat.kind == "flat" and flat.recall_at_10 == 1.0 and not (tmp_path / ANN_DIR / INDEX_FILE).exists()
    ivf = build_ann(tmp_path, shards, "auto", exact_max=1000)
    assert ivf.kind == "ivf" and ivf.params["nlist"] >= 16 and ivf.recall_at_10 >= 0.95
    pq = build_ann(tmp_path, shards, "auto", exact_max=1000, memory_budget=100_000)
    assert pq.kind == "ivfpq" and "budget" in pq.reason and pq.params["refine"] > 1


def test_recall_measurement_exposes_a_bad_index(tmp_path):
    # uniform random vectors have no clusters: one probed list of many misses most true neighbours
    rng = np.random.default_rng(1)
    x = rng.standard_normal((5000, 32)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    shards = _shards(tmp_path, x, dtype="float32")
    info = build_ann(tmp_path, shards, "ivf", recall_queries=50)
    dense = DenseIndex.load(tmp_path, shards, info)
    q = rng.standard_normal((50, 32)).astype(np.float32)
    dense.set_params({"nprobe": 1})
    assert recall_at(dense, q, 10) < 0.6
    dense.set_params({"nprobe": info.params["nlist"]})
    assert recall_at(dense, q, 10) == pytest.approx(1.0)
