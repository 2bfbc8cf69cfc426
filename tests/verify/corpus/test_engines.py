"""Engines and the shard encoder: MiniLM rows independent of batching, LocalEngine with 2 workers = 1 worker byte for
byte, finished shards skipped."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from claimscope.errors import BadSettings
from claimscope.types import EncoderSpec
from claimscope.verify.corpus.encode import ShardEncoder, hash_embed
from claimscope.verify.corpus.engines import LocalEngine, get_engine, pending_shards
from claimscope.verify.corpus.shards import passage_row, write_passage_shard
from claimscope.verify.scifact import corpus_passages, read_corpus

SAMPLE = Path(__file__).parents[2] / "fixtures" / "corpus" / "scifact_corpus_sample.jsonl"


@pytest.fixture(scope="module")
def sentences() -> list[str]:
    return [p.text for p in corpus_passages(read_corpus(SAMPLE))]


def _shards(tmp: Path, passages, per: int) -> list[Path]:  # type: ignore[no-untyped-def]
    paths = []
    for i in range(0, len(passages), per):
        paths.append(tmp / "passages" / f"part-{i // per:05d}.parquet")
        write_passage_shard(paths[-1], [passage_row(p) for p in passages[i: i + per]])
    return paths


@pytest.mark.slow  # loads MiniLM: ~20 s on 2 shared cores
def test_minilm_rows_do_not_depend_on_batch_order_or_size(sentences):
    enc = ShardEncoder(precision="fp32", batch_size=16)
    texts = sentences[:48]
    full = enc.encode(texts)
    assert full.shape == (48, 384) and np.allclose(np.linalg.norm(full, axis=1), 1.0, atol=1e-5)
    assert np.array_equal(enc.encode(texts[10:30]), full[10:30])
    assert np.array_equal(ShardEncoder(precision="fp32", batch_size=3).encode(texts[::-1])[::-1], full)
    out = enc({"passage_id": np.arange(5), "text": np.array(texts[:5], dtype=object)})
    assert np.array_equal(out["embedding"], full[:5]) and list(out["passage_id"]) == [0, 1, 2, 3, 4]
    # the same model as the run's index (sentence-transformers' padded batches differ only in the last bits)
    from claimscope.verify.index import embed_texts

    assert np.abs(embed_texts(texts, enc.spec.model, precision="fp32") - full).max() < 1e-5


def test_hash_embedder_is_deterministic_and_word_based():
    a = hash_embed(["Vitamin D deficiency in the elderly", "vitamin d DEFICIENCY, in the elderly!", "cats"])
    assert np.array_equal(a[0], a[1]) and a[0] @ a[2] < 0.5 and np.allclose(np.linalg.norm(a, axis=1), 1.0)
    assert not hash_embed([""]).any()


@pytest.mark.slow  # two spawned workers load torch + MiniLM: ~20 s on 2 shared cores
def test_local_engine_two_workers_equal_one_worker_byte_for_byte(tmp_path, sentences):
    passages = corpus_passages(read_corpus(SAMPLE))[:90]
    shards = _shards(tmp_path, passages, 30)
    spec = EncoderSpec(precision="fp32", batch_size=8)
    one = LocalEngine(1, progress=False).embed_shards(shards, tmp_path / "one", spec)
    two = LocalEngine(2, progress=False).embed_shards(shards, tmp_path / "two", spec)
    assert [p.name for p in one] == [p.name for p in two] == ["part-00000.npy", "part-00001.npy", "part-00002.npy"]
    assert [p.read_bytes() for p in one] == [p.read_bytes() for p in two]
    assert np.load(one[0]).shape == (30, 384)
    # finished shards are not embedded again
    mtimes = [p.stat().st_mtime_ns for p in two]
    assert pending_shards(shards, tmp_path / "two", spec) == []
    LocalEngine(2, progress=False).embed_shards(shards, tmp_path / "two", spec)
    assert [p.stat().st_mtime_ns for p in two] == mtimes


def test_local_engine_pool_of_row_groups_equals_in_process_and_resumes(tmp_path, monkeypatch):
    import claimscope.verify.corpus.engines as engines_mod
    import claimscope.verify.corpus.shards as shards_mod

    monkeypatch.setattr(shards_mod, "ROW_GROUP", 32)  # 4 row groups per shard,
    monkeypatch.setattr(engines_mod, "TASK_ROWS", 64)  # 2 tasks per shard: workers share a shard
    assert len(engines_mod._tasks(_shards(tmp_path / "probe", corpus_passages(read_corpus(SAMPLE))[:100], 100)[0])) == 2
    passages = corpus_passages(read_corpus(SAMPLE))
    shards = _shards(tmp_path, passages, 100)
    spec = EncoderSpec(model="hash", dtype="float16")
    out = LocalEngine(2, progress=False).embed_shards(shards, tmp_path / "emb", spec)
    one = LocalEngine(1, progress=False).embed_shards(shards, tmp_path / "one", spec)
    assert [p.read_bytes() for p in out] == [p.read_bytes() for p in one]
    arrays = [np.load(p) for p in out]
    assert [a.shape[0] for a in arrays] == [100] * 5 + [23] and arrays[0].dtype == np.float16
    assert np.allclose(np.vstack(arrays), hash_embed([p.text for p in passages]), atol=2e-3)
    out[2].unlink()
    assert [ps.name for ps, _, _ in pending_shards(shards, tmp_path / "emb", spec)] == ["part-00002.parquet"]
    LocalEngine(1, progress=False).embed_shards(shards, tmp_path / "emb", spec)
    assert np.array_equal(np.load(out[2]), arrays[2])


def test_get_engine():
    engine = get_engine("local", workers=3, address="ignored")
    assert isinstance(engine, LocalEngine) and engine.workers == 3 and engine.describe() == "local(workers=3)"
    with pytest.raises(BadSettings, match="unknown engine"):
        get_engine("spark")
    with pytest.raises(BadSettings, match="--workers"):
        LocalEngine(0)
