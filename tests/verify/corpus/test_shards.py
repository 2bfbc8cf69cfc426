"""Passage and embedding shards: round trip, atomic writes, and ingestion that resumes by shard after a kill."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from claimscope.rundir import sha256_file
from claimscope.verify.corpus.shards import (
    INGEST_STATE,
    IngestState,
    embedding_complete,
    iter_passage_shards,
    passage_row,
    read_embedding_shard,
    read_passage_shard,
    table_passages,
    write_embedding_shard,
    write_passage_shard,
)
from claimscope.verify.corpus.sources import CorpusSource
from claimscope.verify.scifact import corpus_passages, read_corpus

SAMPLE = Path(__file__).parents[2] / "fixtures" / "corpus" / "scifact_corpus_sample.jsonl"  # 60 SciFact abstracts


def test_passage_shard_round_trip_keeps_every_field(tmp_path):
    passages = corpus_passages(read_corpus(SAMPLE))[:300]
    path = tmp_path / "passages" / "part-00000.parquet"
    sha = write_passage_shard(path, [passage_row(p) for p in passages])
    assert sha == sha256_file(path)
    back = table_passages(read_passage_shard(path))
    assert [p.model_dump() for p in back] == [p.model_dump() for p in passages]
    assert not list(path.parent.glob(".*.tmp"))


def test_scifact_source_window_1_gives_verify_scifact_passages():
    rows = [r for _, doc in CorpusSource(SAMPLE).stream(0) for r in doc]
    assert [r["passage_id"] for r in rows] == [p.id for p in corpus_passages(read_corpus(SAMPLE))]
    two = [r for _, doc in CorpusSource(SAMPLE, window=2).stream(0) for r in doc]
    first = read_corpus(SAMPLE)[next(iter(read_corpus(SAMPLE)))]["abstract"]
    assert two[0]["text"] == f"{first[0]} {first[1]}" and two[0]["section"] == "s0"


def test_embedding_shard_is_atomic_and_checked_for_completeness(tmp_path):
    path = tmp_path / "part-00000.npy"
    arr = np.random.default_rng(0).standard_normal((10, 8)).astype(np.float32)
    write_embedding_shard(path, arr, dtype="float16")
    back = read_embedding_shard(path)
    assert back.dtype == np.float16 and back.shape == (10, 8) and np.allclose(back, arr, atol=1e-2)
    assert embedding_complete(path, 10, 8, "float16")
    assert not embedding_complete(path, 11) and not embedding_complete(path, 10, dtype="float32")
    path.write_bytes(path.read_bytes()[:100])  # a truncated file (as a non-atomic writer killed midway would leave)
    assert not embedding_complete(path, 10)
    assert not embedding_complete(tmp_path / "missing.npy", 10)


def _ingest(stream, out: Path, source: CorpusSource) -> list[tuple[Path, int, bool]]:
    return list(iter_passage_shards(stream, out, source="sample", fingerprint=source.fingerprint(), shard_size=100))


def test_ingestion_resumes_after_a_kill_and_redoes_the_half_written_shard(tmp_path):
    source = CorpusSource(SAMPLE)
    clean = _ingest(source.stream, tmp_path / "clean", source)
    assert [n for _, n, _ in clean][:-1] == [100] * (len(clean) - 1) and sum(n for _, n, _ in clean) == 523

    def killed(start: int):
        for doc, rows in source.stream(start):
            if doc == 37:  # mid-way through shard 3
                raise KeyboardInterrupt
            yield doc, rows

    run = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        _ingest(killed, run, source)
    state = IngestState.model_validate_json((run / INGEST_STATE).read_text())
    done = len(state.shards)
    assert 0 < done < len(clean)
    # what a kill can leave besides: the next shard renamed into place before its record was written, and a temp file
    (run / f"part-{done:05d}.parquet").write_bytes(b"PAR1 half a shard")
    (run / f".part-{done + 1:05d}.parquet.999999.x.tmp").write_bytes(b"junk")

    starts: list[int] = []

    def recording(start: int):
        starts.append(start)
        yield from source.stream(start)

    resumed = _ingest(recording, run, source)
    assert starts == [state.shards[-1].next_doc] and starts[0] > 0  # finished documents were not read again
    assert [reused for _, _, reused in resumed] == [True] * done + [False] * (len(clean) - done)
    assert [sha256_file(p) for p, _, _ in resumed] == [sha256_file(p) for p, _, _ in clean]
    # a shard changed on disk after it was recorded is rewritten, with every shard after it
    victim = resumed[1][0]
    victim.write_bytes(b"changed")
    again = _ingest(source.stream, run, source)
    assert [reused for _, _, reused in again] == [True] + [False] * (len(clean) - 1)
    assert [sha256_file(p) for p, _, _ in again] == [sha256_file(p) for p, _, _ in clean]


def test_scifact_source_rows_carry_their_paper_title_and_resumed_shards_keep_them(tmp_path):
    """Every passage row of a SciFact abstract carries the row's title, in the shard it lands in (a paper cut by a
    shard boundary has it in both), so resuming or re-sharding writes the same titles."""
    import json

    from claimscope.verify.corpus.titles import read_titles

    expected = {f"scifact:{r['doc_id']}": r["title"] for r in map(json.loads, SAMPLE.read_text().splitlines())}
    source = CorpusSource(SAMPLE)
    shards = [p for p, _, _ in _ingest(source.stream, tmp_path / "p", source)]
    assert read_titles(shards) == (expected, 0)
    for path in shards:  # each shard alone holds the titles of all of its papers
        table = read_passage_shard(path, ["paper_id", "title"])
        assert all(t == expected[p] for p, t in zip(table.column("paper_id").to_pylist(),
                                                    table.column("title").to_pylist(), strict=True))
    # a shard written before titles were stored (no title column) reads as Passages as before, with no titles
    old = tmp_path / "old.parquet"
    table = read_passage_shard(shards[0])
    write_passage_shard(old, table.drop_columns(["title"]))
    assert table_passages(read_passage_shard(old)) == table_passages(table)
    assert read_titles([old]) == ({}, 1)
