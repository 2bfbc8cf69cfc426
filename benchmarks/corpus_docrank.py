"""SciFact dev: open-claim retrieval of the corpus index (`claimscope index`), passage ranking vs document-first.

    .venv/bin/python benchmarks/corpus_docrank.py --scifact ../shared/benchmarks/scifact --index /tmp/scifact-index
    .venv/bin/python benchmarks/corpus_docrank.py --scifact ../shared/benchmarks/scifact --index /tmp/scifact-idx --fit

Builds the corpus index of SciFact's corpus.jsonl with `claimscope index build`'s code (bundled MiniLM, one shard;
skipped when --index already holds one), then for every dev claim searched open (no cited paper) prints recall@1/3/10
of the gold evidence abstracts (`verify.scifact.retrieval_recall`, claims with evidence only), all in this run:
- the passage ranking (BM25 top-200 and dense top-200 passages fused by reciprocal rank; a paper ranked by its best
  passage), the corpus index's open search before document-first ranking;
- document-first (`ShardedEvidenceIndex.search_docs`): the candidate papers (those holding one of those passages)
  ranked by verify.docrank's z-scored fusion of their passages' BM25, best / top-2 passage cosines and title cosine,
  with the query-side adapter, without it, and without titles (a corpus whose titles are unknown); the titles are
  the ones the index stores (built from corpus.jsonl's `title`), none passed in, as from the command line;
- the share of gold abstracts among the candidate papers (the ceiling of document-first ranking);
- the in-memory EvidenceIndex's document search (`benchmarks/verify_scifact.py`'s figures), same claims.

--fit chooses the fusion weights on SciFact **train** claims (never dev): a grid over the weights, best recall@3
(ties: recall@1, then @10), with base and with adapted claim vectors; the chosen ones are printed (shipped as
verify.corpus.search.DOC_PARAMS / DOC_PARAMS_ADAPTED). The adapter was trained on SciFact train, so the adapted
weights are chosen in-sample for the adapter.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import os
import platform
import time
from pathlib import Path

import numpy as np

from claimscope.verify import scifact as sf
from claimscope.verify.corpus.search import CorpusDocParams, DocCandidates, ShardedEvidenceIndex
from claimscope.verify.docrank import DocParams

KS = (1, 3, 10)


def doc_id(paper: str) -> int:
    return int(paper.split(":", 1)[1])


def build(scifact: Path, out: Path, workers: int) -> None:
    from claimscope.types import EncoderSpec
    from claimscope.verify.corpus.build import build_index
    from claimscope.verify.corpus.engines import LocalEngine

    if (out / "manifest.json").exists():
        return
    t0 = time.perf_counter()
    build_index(scifact / "corpus.jsonl", out, engine=LocalEngine(workers, progress=False),
                encoder=EncoderSpec(model="bundled:all-MiniLM-L6-v2"), workers=workers, progress=False)
    print(f"built the corpus index in {time.perf_counter() - t0:.0f}s -> {out}")


def passage_ranking(index: ShardedEvidenceIndex, queries: list[str], q_emb: np.ndarray) -> list[list[int]]:
    """Papers in order of their best passage in the open passage ranking (every candidate passage)."""
    doc_first = index.doc_first
    index.doc_first = False
    try:
        hits = index.search_many(queries, 2 * index.depth, query_embeddings=q_emb)
    finally:
        index.doc_first = doc_first
    return [list(dict.fromkeys(doc_id(h.passage.paper) for h in hs)) for hs in hits]


def ranked(cands: list[DocCandidates], params: CorpusDocParams, titles: bool = True) -> list[list[int]]:
    out = []
    for c in cands:
        if not titles:
            c = DocCandidates(**{**c.__dict__, "title": None})
        fused = c.fused(params)
        order = np.lexsort((np.arange(len(fused)), -fused))[: max(KS)]
        out.append([doc_id(c.papers[j]) for j in order])
    return out


def recall(gold: list[dict], ranks: list[list[int]]) -> dict[str, float]:
    return sf.retrieval_recall(gold, {int(g["id"]): r for g, r in zip(gold, ranks, strict=True)}, ks=KS)


def ceiling(gold: list[dict], cands: list[DocCandidates]) -> float:
    found = total = 0
    for g, c in zip(gold, cands, strict=True):
        want = {int(d) for d in g.get("evidence", {})}
        found += len(want & {doc_id(p) for p in c.papers})
        total += len(want)
    return found / total if total else 0.0


def fit(gold: list[dict], cands: list[DocCandidates]) -> tuple[CorpusDocParams, dict[str, float]]:
    """The grid's best weights on these claims (recall@3, then @1, then @10)."""
    rows = [(g, c) for g, c in zip(gold, cands, strict=True) if g.get("evidence")]
    grid = itertools.product((0.0, 0.5, 1.0, 1.5, 2.0, 3.0), (0.0, 0.5, 1.0), (0.0, 0.5, 1.0, 1.5, 2.0),
                             (0.0, 0.5, 1.0), (0.0, 0.5, 1.0))
    best: tuple[tuple[float, ...], CorpusDocParams, dict[str, float]] | None = None
    for w_bm25, w_bm25_max, w_max, w_top2, w_title in grid:
        if not (w_bm25 or w_bm25_max or w_max or w_top2 or w_title):
            continue
        p = CorpusDocParams(DocParams(w_bm25=w_bm25, w_max=w_max, w_top2=w_top2, w_title=w_title), w_bm25_max)
        m = recall([g for g, _ in rows], ranked([c for _, c in rows], p))
        key = (m["retrieval_recall@3"], m["retrieval_recall@1"], m["retrieval_recall@10"])
        if best is None or key > best[0]:
            best = (key, p, m)
    assert best is not None
    return best[1], best[2]


def describe(p: CorpusDocParams) -> str:
    d = p.doc
    return (f"w_bm25 (paper text) {d.w_bm25}, w_bm25_max {p.w_bm25_max}, w_max {d.w_max}, w_top2 {d.w_top2}, "
            f"w_title {d.w_title}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scifact", type=Path, required=True, help="folder with corpus.jsonl, claims_train/dev.jsonl")
    ap.add_argument("--index", type=Path, required=True, help="corpus index folder (built here when missing)")
    ap.add_argument("--workers", type=int, default=1, help="encoder processes when building")
    ap.add_argument("--memory-index-dir", type=Path, default=Path("runs/bench-scifact/index"),
                    help="the in-memory EvidenceIndex (benchmarks/verify_scifact.py's), built once and reused")
    ap.add_argument("--fit", action="store_true", help="choose the fusion weights on SciFact train (not dev)")
    ap.add_argument("--limit", type=int, default=0, help="only the first N claims (0 = all)")
    ap.add_argument("--json", type=Path, default=None, help="also write every figure as JSON here")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)

    build(args.scifact, args.index, args.workers)
    corpus = sf.read_corpus(args.scifact / "corpus.jsonl")
    index = ShardedEvidenceIndex(args.index)  # the titles the index stores (as `claimscope index search` uses them)
    titles = {sf.paper_key(d): doc["title"] for d, doc in corpus.items()}
    stored = index.titles
    print(f"titles stored in the index: {len(stored):,} of {len(titles):,} papers, "
          f"{sum(stored.get(k) == t for k, t in titles.items()):,} equal to corpus.jsonl's")
    split = "train" if args.fit else "dev"
    gold = sf.read_jsonl_rows(args.scifact / f"claims_{split}.jsonl")
    if args.limit:
        gold = gold[: args.limit]
    queries = [g["claim"] for g in gold]
    m = index.manifest
    cpu = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    print(f"SciFact {split}: {len(gold)} claims ({sum(bool(g.get('evidence')) for g in gold)} with evidence), searched "
          f"open; corpus index {m.count:,} passages, {len(m.paper_shards):,} papers, {len(m.shards)} shard(s), "
          f"dense {m.ann.kind if m.ann else '-'}, {m.encoder.model}; {cpu}")
    q_emb = index.embed_queries(queries)
    adapter = index.adapter()
    cands_base = index.doc_candidates(queries, query_embeddings=q_emb, adapter=False)  # embeds the titles once
    t0 = time.perf_counter()
    cands_adapted = index.doc_candidates(queries, query_embeddings=q_emb) if adapter is not None else cands_base
    t_doc = time.perf_counter() - t0
    out: dict = {"split": split, "claims": len(gold), "cpu": cpu,
                 "adapter": None if adapter is None else adapter.sha256,
                 "candidate_ceiling": ceiling(gold, cands_base),
                 "candidate_papers_mean": float(np.mean([len(c.papers) for c in cands_base])),
                 "doc_candidates_ms_per_claim": 1000 * t_doc / max(1, len(gold))}

    if args.fit:
        p_base, m_base = fit(gold, cands_base)
        p_adapt, m_adapt = fit(gold, cands_adapted)
        out |= {"base": {"params": describe(p_base), **m_base}, "adapted": {"params": describe(p_adapt), **m_adapt}}
        print(f"gold abstracts among the candidate papers: {out['candidate_ceiling']:.3f} "
              f"({out['candidate_papers_mean']:.0f} papers per claim)")
        print(f"base claim vectors:    {describe(p_base)}  recall@1/3/10 "
              + "/".join(f"{m_base[f'retrieval_recall@{k}']:.3f}" for k in KS))
        print(f"adapted claim vectors: {describe(p_adapt)}  recall@1/3/10 "
              + "/".join(f"{m_adapt[f'retrieval_recall@{k}']:.3f}" for k in KS))
    else:
        t0 = time.perf_counter()
        passages = passage_ranking(index, queries, q_emb)
        t_pass = time.perf_counter() - t0
        rows = {
            "passage ranking (before)": recall(gold, passages),
            "document-first, query adapter": recall(gold, ranked(cands_adapted, index.doc_params_adapted
                                                                 if adapter is not None else index.doc_params)),
            "document-first, no adapter": recall(gold, ranked(cands_base, index.doc_params)),
            "document-first, adapter, no titles": recall(gold, ranked(cands_adapted, index.doc_params_adapted
                                                                      if adapter is not None else index.doc_params,
                                                                      titles=False)),
        }
        from claimscope.verify.scifact_pipeline import DocRetriever, scifact_index

        memory = scifact_index(corpus, args.memory_index_dir)
        for name, retriever in (("in-memory EvidenceIndex, adapter", DocRetriever(memory)),
                                ("in-memory EvidenceIndex, no adapter", DocRetriever(memory, adapter=False)),
                                ("in-memory stemmed BM25 alone", DocRetriever(memory, dense=False))):
            rows[name] = recall(gold, retriever.search(queries, max(KS)))
        out["recall"] = rows
        out["passage_ranking_ms_per_claim"] = 1000 * t_pass / max(1, len(gold))
        print("weights (chosen on SciFact train): base " + describe(index.doc_params) + "; adapted "
              + describe(index.doc_params_adapted))
        print("query adapter: " + ("none" if adapter is None
                                   else f"verify/models/query-adapter ({adapter.sha256[:12]})"))
        print("recall of gold evidence abstracts (micro over abstracts; claims with evidence only)")
        print(f"  {'':44s} " + "  ".join(f"@{k:<5d}" for k in KS))
        for name, r in rows.items():
            print(f"  {name:44s} " + "  ".join(f"{r[f'retrieval_recall@{k}']:.3f}" for k in KS))
        print(f"  gold abstracts among the candidate papers (document-first ceiling): {out['candidate_ceiling']:.3f} "
              f"({out['candidate_papers_mean']:.0f} candidate papers per claim)")
        print(f"  time per claim (warm; claims embedded before): candidate papers and their signals "
              f"{out['doc_candidates_ms_per_claim']:.1f} ms, passage ranking alone "
              f"{out['passage_ranking_ms_per_claim']:.1f} ms")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
