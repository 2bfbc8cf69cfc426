"""Document-first open search of the corpus index (verify.corpus.search): candidate papers ranked by verify.docrank's
fused signals, then the best passages inside the top papers; cited-paper (restricted) search unchanged.

Real SciFact abstracts (tests/fixtures/corpus: 60 abstracts, 523 sentences) embedded with the bundled MiniLM."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import bm25s
import numpy as np
import pytest

from claimscope.types import EncoderSpec
from claimscope.verify.corpus.bm25 import PAPERS, query_tokens
from claimscope.verify.corpus.build import build_index
from claimscope.verify.corpus.engines import LocalEngine
from claimscope.verify.corpus.search import ShardedEvidenceIndex
from claimscope.verify.docrank import DocParams, merged_text
from claimscope.verify.index import _tokenize

FIXTURES = Path(__file__).parents[2] / "fixtures" / "corpus"
SAMPLE = FIXTURES / "scifact_corpus_sample.jsonl"
CLAIMS = [json.loads(line) for line in (FIXTURES / "scifact_claims_sample.jsonl").read_text().splitlines()]
TITLES = {f"scifact:{r['doc_id']}": r["title"] for r in map(json.loads, SAMPLE.read_text().splitlines())}
MODEL = "bundled:all-MiniLM-L6-v2"


@pytest.fixture(scope="module")
def minilm_index(tmp_path_factory) -> Path:
    """The sample in 3 shards of 200 passages (papers cut by shard boundaries), bundled MiniLM vectors."""
    out = tmp_path_factory.mktemp("docfirst") / "idx"
    build_index(SAMPLE, out, engine=LocalEngine(1, progress=False), encoder=EncoderSpec(model=MODEL),
                shard_size=200, progress=False)
    return out


def _papers(hits) -> list[str]:  # type: ignore[no-untyped-def]
    return list(dict.fromkeys(h.passage.paper for h in hits))


def test_document_first_puts_the_cited_abstract_first_where_passage_ranking_did_not(minilm_index):
    """Claim 1 of SciFact ("0-dimensional biomaterials show inductive properties.") cites abstract 31715818: the
    passage ranking's best passage is in another abstract and 31715818 is not among its top 3 papers; ranking the
    papers first (paper BM25, best / top-2 sentence cosines with the adapted claim vector, title cosine) reads
    31715818 first."""
    claim = next(c for c in CLAIMS if c["id"] == 1)
    gold = f"scifact:{claim['cited_doc_ids'][0]}"
    index = ShardedEvidenceIndex(minilm_index, titles=TITLES)
    index.doc_first = False
    before = index.search(claim["claim"], 9)
    index.doc_first = True
    after = index.search(claim["claim"], 9)
    assert gold not in _papers(before)[:3]
    assert _papers(after)[0] == gold and after[0].doc_rank == 1
    # the query-side adapter applies to the bundled MiniLM unless switched off
    assert index.adapter() is not None and ShardedEvidenceIndex(minilm_index, query_adapter=False).adapter() is None


def test_open_hits_are_the_best_passages_of_the_top_papers(minilm_index):
    """`docs` papers, about k / docs passages each, best paper first; each paper's passages are its restricted
    (cited-paper) ranking, and Hit.index is the passage's global row."""
    index = ShardedEvidenceIndex(minilm_index, titles=TITLES)
    texts = [c["claim"] for c in CLAIMS]
    q = index.embed_queries(texts)
    got = index.search_many(texts, 7, query_embeddings=q)
    ranked = index.search_docs(texts, 3, query_embeddings=q)
    for text, hits, docs, qv in zip(texts, got, ranked, q, strict=True):
        assert len(hits) == 7 and [h.doc_rank for h in hits] == [1, 1, 1, 2, 2, 2, 3]
        assert _papers(hits) == [p for p, _ in docs]
        assert [h.doc_score for h in hits[::3]] == pytest.approx([s for _, s in docs])
        for rank, (paper, _) in enumerate(docs, 1):
            mine = [h for h in hits if h.doc_rank == rank]
            alone = index.search_many([text], 3, allowed=[{paper}], query_embeddings=qv[None])[0]
            assert [(h.passage.id, h.index, h.bm25_rank, h.dense_rank) for h in mine] == \
                [(h.passage.id, h.index, h.bm25_rank, h.dense_rank) for h in alone][: len(mine)]
        assert all(index.store.get(h.index).id == h.passage.id for h in hits)


def test_papers_are_ranked_by_the_fused_signals_recomputed_by_hand(minilm_index):
    """The document score, rebuilt from the shards' raw contents: every passage of each candidate paper (read from
    the Parquet and embedding shards), BM25 of the paper's merged text per shard (summed for a paper cut by a shard
    boundary), cosines with the adapted claim vector, title cosine; z-scored over the candidates, shipped weights."""
    index = ShardedEvidenceIndex(minilm_index, titles=TITLES)
    m = index.manifest
    assert any(len(s) == 2 for s in m.paper_shards.values())  # a paper split over two shards is among them
    claim = CLAIMS[4]["claim"]
    q = index.embed_queries([claim])
    qd = index.adapter().apply(q)[0]
    cand = index.doc_candidates([claim], query_embeddings=q)[0]
    p = index.doc_params_adapted
    shard_passages = {s: [] for s in range(len(m.shards))}
    from claimscope.verify.corpus.shards import read_passage_shard, table_passages

    for s, sh in enumerate(m.shards):
        shard_passages[s] = table_passages(read_passage_shard(minilm_index / "passages" / f"{sh.name}.parquet"))
    tokens = query_tokens([claim])[0]  # the claim's stemmed tokens
    by_hand = {}
    for paper in cand.papers:
        rows = [int(index.embeddings.offsets[s]) + i for s in m.paper_shards[paper]
                for i, x in enumerate(shard_passages[s]) if x.paper == paper]
        cos = np.sort(index.embeddings.rows(np.array(rows)) @ qd)[::-1]
        lexical = 0.0
        for s in m.paper_shards[paper]:
            papers = list(dict.fromkeys(x.paper for x in shard_passages[s]))
            bm = bm25s.BM25(k1=DocParams().k1, b=DocParams().b)
            bm.index(_tokenize([merged_text([x for x in shard_passages[s] if x.paper == k]) for k in papers]),
                     show_progress=False)
            known = [t for t in tokens if t in bm.vocab_dict]
            lexical += float(bm.get_scores(known)[papers.index(paper)]) if known else 0.0
        title = float(index.embed_queries([TITLES[paper]])[0] @ qd)
        by_hand[paper] = (lexical, cos[0], cos[0] + (cos[1] if len(cos) > 1 else cos[0]), title)
    sig = np.array([by_hand[k] for k in cand.papers], dtype=np.float64)
    z = (sig - sig.mean(0)) / sig.std(0)
    d = p.doc
    fused = z @ np.array([d.w_bm25, d.w_max, d.w_top2, d.w_title]) + p.w_bm25_max * _zrow(cand.bm25_max)
    assert np.allclose(cand.bm25, sig[:, 0], rtol=1e-4, atol=1e-4)
    assert np.allclose(cand.fused(p), fused, atol=1e-3)
    order = [cand.papers[j] for j in np.argsort(-fused, kind="stable")[:5]]
    assert [k for k, _ in index.search_docs([claim], 5, query_embeddings=q)[0]] == order


def _zrow(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return (x - x.mean()) / x.std() if x.std() > 0 else np.zeros_like(x)


def test_cited_paper_queries_are_unchanged(minilm_index):
    """Restricted queries give the same hits with document-first on or off (and no document ranks)."""
    on = ShardedEvidenceIndex(minilm_index, titles=TITLES)
    off = ShardedEvidenceIndex(minilm_index, doc_first=False)
    texts = [c["claim"] for c in CLAIMS]
    allowed = [{f"scifact:{d}" for d in c["cited_doc_ids"]} for c in CLAIMS]
    q = on.embed_queries(texts)
    a = on.search_many(texts, 6, allowed=allowed, query_embeddings=q)
    b = off.search_many(texts, 6, allowed=allowed, query_embeddings=q)
    assert a == b and all(h.doc_rank == 0 for hs in a for h in hs)
    assert all({h.passage.paper for h in hs} <= cited for hs, cited in zip(a, allowed, strict=True))


def test_paper_bm25_is_built_for_an_index_that_predates_it(minilm_index, tmp_path):
    """An index built before the paper BM25 existed (no bm25/part-*/papers) gets it built on first use and kept."""
    copy = tmp_path / "idx"
    shutil.copytree(minilm_index, copy)
    for d in (copy / "bm25").iterdir():
        shutil.rmtree(d / PAPERS)
    claim = CLAIMS[0]["claim"]
    old = ShardedEvidenceIndex(copy).search_docs([claim], 5)
    assert all((d / PAPERS / "paper_keys.json").is_file() for d in (copy / "bm25").iterdir())
    assert old == ShardedEvidenceIndex(minilm_index).search_docs([claim], 5)


def test_index_search_cli_shows_document_ranks_and_the_passage_ranking_on_request(minilm_index, capsys):
    from claimscope.cli import main

    claim = next(c for c in CLAIMS if c["id"] == 1)["claim"]
    capsys.readouterr()
    assert main(["index", "search", str(minilm_index), claim, "-k", "6", "--json"]) == 0
    docs = json.loads(capsys.readouterr().out)
    assert [h["doc_rank"] for h in docs] == [1, 1, 2, 2, 3, 3] and docs[0]["paper"] == "scifact:31715818"
    assert main(["index", "search", str(minilm_index), claim, "-k", "6", "--json", "--passages"]) == 0
    passages = json.loads(capsys.readouterr().out)
    assert all(h["doc_rank"] == 0 for h in passages) and passages[0]["paper"] != "scifact:31715818"


def _without_titles(index_dir: Path, to: Path) -> Path:
    """A copy of the index as built before titles were stored: passage shards without the title column, no titles/."""
    import pyarrow.parquet as pq

    shutil.copytree(index_dir, to)
    shutil.rmtree(to / "titles")
    for path in (to / "passages").glob("part-*.parquet"):
        pq.write_table(pq.read_table(path).drop_columns(["title"]), path, compression="zstd", row_group_size=1024)
    return to


def test_a_built_index_stores_titles_and_the_document_ranking_uses_them(minilm_index, tmp_path, caplog):
    """The build stores every paper's title (passage shards) and their MiniLM vectors (titles/); an index opened
    without titles passed ranks with them exactly as when the same titles are passed in, and differently from the
    index without titles (an index built before titles were stored: it still loads, says titles are missing, and
    ranks as before, without the title cosine)."""
    assert (minilm_index / "titles" / "vectors.npy").is_file()
    stored = ShardedEvidenceIndex(minilm_index)
    assert stored.titles == TITLES
    texts = [c["claim"] for c in CLAIMS[:8]]
    q = stored.embed_queries(texts)
    got = stored.doc_candidates(texts, query_embeddings=q)
    passed = ShardedEvidenceIndex(minilm_index, titles=TITLES).doc_candidates(texts, query_embeddings=q)
    old_dir = _without_titles(minilm_index, tmp_path / "old")
    with caplog.at_level("WARNING", logger="claimscope.verify.corpus.search"):
        old = ShardedEvidenceIndex(old_dir)
        none = old.doc_candidates(texts, query_embeddings=q)
    assert "stores no paper titles" in caplog.text and old.titles == {}
    p = stored.doc_params_adapted
    for a, b, c in zip(got, passed, none, strict=True):
        assert a.papers == b.papers == c.papers and a.title is not None and c.title is None
        assert np.allclose(a.title, b.title, atol=1e-5) and np.allclose(a.fused(p), b.fused(p), atol=1e-4)
        assert not np.allclose(a.fused(p), c.fused(p), atol=1e-2)  # the title cosine moves the fused scores
    # searching: the stored titles give the passed-titles ranking; the old index ranks without them
    assert stored.search_docs(texts, 5, query_embeddings=q) == ShardedEvidenceIndex(
        minilm_index, titles=TITLES).search_docs(texts, 5, query_embeddings=q)
    assert ShardedEvidenceIndex(old_dir, titles=TITLES).search_docs(texts, 5, query_embeddings=q) != \
        old.search_docs(texts, 5, query_embeddings=q)
    # a title passed in overrides the stored one for that paper alone
    paper = got[0].papers[0]
    over = ShardedEvidenceIndex(minilm_index, titles={paper: "Unrelated words about galaxies and telescopes"})
    o = over.doc_candidates(texts[:1], query_embeddings=q[:1])[0]
    assert o.title is not None and not np.isclose(o.title[0], got[0].title[0]) and np.allclose(o.title[1:],
                                                                                            got[0].title[1:])
