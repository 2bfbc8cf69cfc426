"""Sharded search against verify.index.EvidenceIndex: a claim restricted to its cited papers gets EvidenceIndex's hits
(only those papers' shards are touched); an open query gets the exact passage-level hybrid ranking (EvidenceIndex
over every paper) on one shard, and nearly the same evidence on many shards (BM25 statistics are per shard).

Both indexes rank documents first for open queries (verify/docrank.py; tests/verify/corpus/test_docfirst.py); here
the corpus index's passage ranking (`doc_first=False`, the candidates of its document ranking) is compared with
EvidenceIndex restricted to all papers: the same RRF over every passage."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from claimscope.types import EncoderSpec
from claimscope.verify.corpus.build import build_index
from claimscope.verify.corpus.engines import LocalEngine
from claimscope.verify.corpus.search import ShardedEvidenceIndex
from claimscope.verify.corpus.shards import read_embedding_shard, read_passage_shard, table_passages
from claimscope.verify.index import EvidenceIndex

FIXTURES = Path(__file__).parents[2] / "fixtures" / "corpus"
SAMPLE = FIXTURES / "scifact_corpus_sample.jsonl"
CLAIMS = [json.loads(line) for line in (FIXTURES / "scifact_claims_sample.jsonl").read_text().splitlines()]


def _build(corpus: Path, out: Path, shard_size: int) -> ShardedEvidenceIndex:
    build_index(corpus, out, engine=LocalEngine(1, progress=False), encoder=EncoderSpec(model="hash"),
                shard_size=shard_size, progress=False)
    return ShardedEvidenceIndex(out, doc_first=False)


def _key(hits):  # type: ignore[no-untyped-def]
    return [(h.passage.id, h.bm25_rank, h.dense_rank) for h in hits]


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    """The first abstracts of the sample, at most 200 sentences (EvidenceIndex scores every passage up to that)."""
    lines, n = [], 0
    for line in SAMPLE.read_text().splitlines():
        k = len(json.loads(line)["abstract"])
        if n + k > 200:
            break
        lines.append(line)
        n += k
    path = tmp_path_factory.mktemp("small") / "corpus.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_one_shard_index_gives_evidence_index_hits(small, tmp_path):
    sharded = _build(small, tmp_path / "idx", shard_size=10_000)
    assert len(sharded.manifest.shards) == 1 and sharded.manifest.ann.kind == "flat"
    passages = table_passages(read_passage_shard(tmp_path / "idx" / "passages" / "part-00000.parquet"))
    emb = np.asarray(read_embedding_shard(tmp_path / "idx" / "embeddings" / "part-00000.npy"))
    memory = EvidenceIndex(passages, emb, "hash")
    papers = sorted({p.paper for p in passages})
    texts = [c["claim"] for c in CLAIMS] + ["white matter diffusion in preterm infants", "zzzz unknown words"]
    n = len(texts)
    texts += texts[:3]
    allowed = [None] * n + [{papers[0]}, {papers[1], papers[2]}, {"scifact:0"}]
    q = sharded.embed_queries(texts)
    got = sharded.search_many(texts, 8, allowed=allowed, query_embeddings=q)
    # open queries: the exact hybrid ranking over every passage = EvidenceIndex restricted to all papers
    want = memory.search_many(texts, 8, allowed=[a if a is not None else set(papers) for a in allowed],
                              query_embeddings=q)
    assert [_key(h) for h in got] == [_key(h) for h in want]
    assert [[round(h.score, 9) for h in hs] for hs in got] == [[round(h.score, 9) for h in hs] for hs in want]
    assert [[h.index for h in hs] for hs in got] == [[h.index for h in hs] for hs in want]
    assert [[round(h.dense_score, 5) for h in hs] for hs in got] == [[round(h.dense_score, 5) for h in hs]
                                                                     for hs in want]
    assert got[-1] == [] and all(h.passage.paper == papers[0] for h in got[-3]) and len(got[-3]) == 8
    # restricted queries are EvidenceIndex's own restricted search, unchanged
    assert [_key(h) for h in got[n:]] == [_key(h) for h in memory.search_many(texts[n:], 8, allowed=allowed[n:],
                                                                              query_embeddings=q[n:])]


def test_cited_paper_search_touches_only_its_shards(tmp_path):
    index = _build(SAMPLE, tmp_path / "idx", shard_size=50)
    m = index.manifest
    assert len(m.shards) == 11 and sum(s.rows for s in m.shards) == 523
    straddling = next(p for p, s in m.paper_shards.items() if len(s) == 2)  # a paper cut by a shard boundary
    single = next(p for p, s in m.paper_shards.items() if len(s) == 1 and s[0] not in m.paper_shards[straddling])
    seen: set[int] = set()
    for papers in ({single}, {straddling}, {single, straddling}):
        index.touched.clear()
        hits = index.search("the effect of treatment on patients", 50, allowed=papers)
        shards = {s for p in papers for s in m.paper_shards[p]}
        seen |= shards
        assert index.touched == shards and index.bm25.loaded == seen  # no other shard's BM25 was even loaded
        assert {h.passage.paper for h in hits} == papers
        n_rows = sum(len(index.store.rows_of(s, papers)) for s in shards)
        assert len(hits) == n_rows  # every passage of the cited papers is a candidate, none of any other
    index.touched.clear()
    assert index.search("anything", 5, allowed={"scifact:0"}) == [] and index.touched == set()


def test_many_shard_index_finds_what_the_in_memory_index_finds(tmp_path):
    """BM25 statistics are per shard, so ranks can differ from one global index; the evidence found should not."""
    index = _build(SAMPLE, tmp_path / "idx", shard_size=150)
    passages, embs = [], []
    for s in index.manifest.shards:
        passages += table_passages(read_passage_shard(tmp_path / "idx" / "passages" / f"{s.name}.parquet"))
        embs.append(np.asarray(read_embedding_shard(tmp_path / "idx" / "embeddings" / f"{s.name}.npy")))
    memory = EvidenceIndex(passages, np.vstack(embs), "hash")
    texts = [c["claim"] for c in CLAIMS]
    q = index.embed_queries(texts)
    got = index.search_many(texts, 10, query_embeddings=q)
    everything = {p.paper for p in passages}
    want = memory.search_many(texts, 10, allowed=[everything] * len(texts), query_embeddings=q)
    overlap = [len({h.passage.id for h in a} & {h.passage.id for h in b}) / 10 for a, b in zip(got, want, strict=True)]
    assert np.mean(overlap) >= 0.8
    assert sum(a[0].passage.id == b[0].passage.id for a, b in zip(got, want, strict=True)) >= 0.75 * len(texts)
    # and the cited abstract is found as often
    cited = [{f"scifact:{d}" for d in c["cited_doc_ids"]} for c in CLAIMS]
    found = sum(any(h.passage.paper in c for h in hs) for hs, c in zip(got, cited, strict=True))
    found_memory = sum(any(h.passage.paper in c for h in hs) for hs, c in zip(want, cited, strict=True))
    assert found >= found_memory - 1 and found >= len(CLAIMS) // 2
