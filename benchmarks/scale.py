"""How corpus-index cost grows with corpus size: build throughput, peak memory, size on disk, ANN recall, query latency.

Corpora are synthetic but made of real text: SciFact abstracts (5,183 of them), the first pass as they are, every
further pass with each abstract's sentences shuffled (seeded) under a new doc id, until N passages (windows of
`--window` sentences, stride 1) are reached. Each size is built by the real command (`claimscope index build`, local
engine, `--workers`) in a fresh subprocess, so the peak memory printed is that build's own (sampled every 20 ms over
the process and its workers, per phase). Ingestion memory must not grow with N: passages stream into shards of
`--shard-size` rows.

Embedding a million passages with MiniLM on a 2-core CPU takes hours (~120-380 sentences/s measured), so the scaling
runs use `--embedder hash` (a deterministic word-hash embedder, no model) for the index / ANN / query measurements,
and the real MiniLM build is measured on the smallest size (`--minilm-size`). The output says which embedder each
row used. Recall@10 of the approximate index against exact search is measured with SciFact dev claims as queries
(tie-aware: an approximate hit counts when its exact score reaches the exact 10th score). Query latency is per claim:
one claim at a time through ShardedEvidenceIndex.search_many (BM25 over all shards + ANN, then the document-first
ranking of the candidate papers and the passages of the top ones), after the index is loaded and one warm-up query;
"passage q" is the same claim ranked by passages alone (`doc_first=False`, no document step); "cited" restricts each
claim to the papers it cites (only their shards are touched).

Usage: .venv/bin/python benchmarks/scale.py [CORPUS] [--sizes 50k,200k,1M] [--workers 2] [--minilm-size 50k]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SCIFACT = ROOT.parent / "shared" / "benchmarks" / "scifact"
RESULTS = ROOT / "benchmarks" / "results"


def parse_size(text: str) -> int:
    text = text.strip().lower()
    mult = {"k": 1_000, "m": 1_000_000}.get(text[-1], 1)
    return int(float(text[:-1] if text[-1] in "km" else text) * mult)


def make_corpus(src: Path, n: int, out: Path, window: int) -> tuple[int, int, np.ndarray, list[str]]:
    """Write a SciFact-style corpus of >= n passages (whole documents). Returns (documents, passages, the sentence
    ids of every passage window in index order [passages, window] (-1 padded), the distinct sentences)."""
    from array import array

    from claimscope.retrieve.passages import _windows

    rows = [json.loads(line) for line in src.read_text(encoding="utf-8").splitlines() if line.strip()]
    sentence_id: dict[str, int] = {}
    for row in rows:
        for sent in row["abstract"]:
            sentence_id.setdefault(sent, len(sentence_id))
    ids = array("i")
    docs = passages = 0
    with open(out, "w", encoding="utf-8") as f:
        copy = 0
        while passages < n:
            for row in rows:
                sents = list(row["abstract"])
                if copy:
                    random.Random(copy * 1_000_003 + int(row["doc_id"])).shuffle(sents)
                f.write(json.dumps({"doc_id": int(row["doc_id"]) + copy * 100_000_000, "title": row["title"],
                                    "abstract": sents}) + "\n")
                docs += 1
                for i, j in _windows(len(sents), window, 1):
                    ids.extend([sentence_id[x] for x in sents[i:j]] + [-1] * (window - (j - i)))
                    passages += 1
                if passages >= n:
                    break
            copy += 1
    return docs, passages, np.frombuffer(ids, dtype=np.int32).reshape(-1, window), list(sentence_id)


class SentenceMeanEngine:
    """Benchmark engine: a window's vector is the normalised sum of its sentences' real MiniLM vectors (embedded
    once, `vectors`), so the dense index is measured on the geometry of real embeddings at sizes MiniLM could not
    embed here in the time (mean pooling over tokens makes this close to embedding the window itself)."""

    name = "sentence-mean"

    def __init__(self, pairs: Path, vectors: Path) -> None:
        self.pairs = np.load(pairs, mmap_mode="r")
        self.vectors = np.load(vectors)

    def describe(self) -> str:
        return "benchmark: bundled MiniLM sentence vectors, summed and normalised per window"

    def embed_shards(self, passage_shards: list[Path], out_dir: Path, encoder) -> list[Path]:  # type: ignore[no-untyped-def]
        from claimscope.verify.corpus.shards import embedding_shard_path, passage_shard_rows, write_embedding_shard

        first = 0
        out = []
        for ps in passage_shards:
            n = passage_shard_rows(ps)
            ids = np.asarray(self.pairs[first: first + n])
            emb = np.where(ids[:, :, None] >= 0, self.vectors[np.maximum(ids, 0)], 0.0).sum(axis=1)
            emb /= np.linalg.norm(emb, axis=1, keepdims=True)
            path = embedding_shard_path(out_dir, ps)
            write_embedding_shard(path, emb.astype(np.float32), dtype=encoder.dtype)
            out.append(path)
            first += n
        return out


def sentence_vectors(sentences: list[str], work: Path, workers: int) -> tuple[Path, float]:
    """Real MiniLM vectors of the distinct SciFact sentences (cached in `work`); returns (path, sentences/s)."""
    from claimscope.types import EncoderSpec
    from claimscope.verify.corpus.engines import LocalEngine
    from claimscope.verify.corpus.shards import write_passage_shard

    path = work / "sentences-minilm.npy"
    rate_file = work / "sentences-minilm.rate"
    if path.exists() and rate_file.exists() and np.load(path, mmap_mode="r").shape[0] == len(sentences):
        return path, float(rate_file.read_text().split()[0])
    shard = work / "sentences" / "passages" / "part-00000.parquet"
    rows = [{"passage_id": str(i), "paper_id": "s", "arxiv_id": None, "version": None, "page": 1, "section": None,
             "start": 0, "end": len(t), "text": t} for i, t in enumerate(sentences)]
    write_passage_shard(shard, rows)
    t0 = time.perf_counter()
    [emb] = LocalEngine(workers, progress=False).embed_shards([shard], work / "sentences" / "emb", EncoderSpec())
    rate = len(sentences) / (time.perf_counter() - t0)
    shutil.copyfile(emb, path)
    rate_file.write_text(f"{rate:.1f} measured {time.strftime('%Y-%m-%d %H:%M')}")
    return path, rate


def build(corpus: Path, out: Path, args: argparse.Namespace, embedder: str, pairs: Path | None,
          vectors: Path | None) -> tuple[float, dict]:
    """One index build in a fresh process (so its peak memory is its own)."""
    cmd = [sys.executable, __file__, "--build-one", str(corpus), str(out), "--embedder", embedder,
           "--workers", str(args.workers), "--shard-size", str(args.shard_size), "--window", str(args.window),
           "--ann", args.ann, "--ann-memory", str(args.ann_memory)]
    if pairs is not None and vectors is not None:
        cmd += ["--pairs", str(pairs), "--vectors", str(vectors)]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    wall = time.perf_counter() - t0
    manifest = json.loads((out / "manifest.json").read_text())
    return wall, manifest


def build_one(args: argparse.Namespace) -> int:
    from claimscope.types import EncoderSpec
    from claimscope.verify.corpus.build import build_index
    from claimscope.verify.corpus.engines import get_engine

    corpus, out = args.build_one
    if args.embedder == "minilm-sentences":
        engine = SentenceMeanEngine(args.pairs, args.vectors)
        encoder = EncoderSpec(dtype="float16")
    else:
        engine = get_engine("local", workers=args.workers, progress=False)
        encoder = EncoderSpec(model=args.embedder, dtype="float16")
    build_index(Path(corpus), Path(out), engine=engine, encoder=encoder, shard_size=args.shard_size, ann=args.ann,
                memory_budget=int(float(args.ann_memory) * 2**30), window=args.window, workers=args.workers,
                progress=False)
    return 0


def claims(path: Path, limit: int) -> list[tuple[str, list[str]]]:
    out = []
    for line in path.read_text(encoding="utf-8").splitlines()[:limit]:
        row = json.loads(line)
        out.append((row["claim"], [f"scifact:{d}" for d in row.get("cited_doc_ids", [])]))
    return out


def measure_queries(index_dir: Path, queries: list[tuple[str, list[str]]], k: int = 8) -> dict:
    from claimscope.verify.corpus.ann import recall_at
    from claimscope.verify.corpus.search import ShardedEvidenceIndex

    t0 = time.perf_counter()
    ix = ShardedEvidenceIndex(index_dir)
    texts = [q for q, _ in queries]
    q_emb = ix.embed_queries(texts)
    load_s = time.perf_counter() - t0
    recall = recall_at(ix.dense, q_emb, 10)
    ix.search_many(texts[:1], k, query_embeddings=q_emb[:1])  # warm-up: loads the BM25 shards
    open_ms, passage_ms, dense_ms, cited_ms, touched = [], [], [], [], []
    for i, (text, cited) in enumerate(queries):
        t = time.perf_counter()
        ix.dense.search(q_emb[i: i + 1], 10)
        dense_ms.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        ix.search_many([text], k, query_embeddings=q_emb[i: i + 1])
        open_ms.append((time.perf_counter() - t) * 1000)
        ix.doc_first = False
        t = time.perf_counter()
        ix.search_many([text], k, query_embeddings=q_emb[i: i + 1])
        passage_ms.append((time.perf_counter() - t) * 1000)
        ix.doc_first = True
        if cited:
            ix.touched = set()
            t = time.perf_counter()
            ix.search_many([text], k, allowed=[set(cited)], query_embeddings=q_emb[i: i + 1])
            cited_ms.append((time.perf_counter() - t) * 1000)
            touched.append(len(ix.touched))
    return {"recall_at_10_claims": round(recall, 4), "query_ms_median": round(float(np.median(open_ms)), 2),
            "query_ms_p95": round(float(np.percentile(open_ms, 95)), 2),
            "passage_query_ms_median": round(float(np.median(passage_ms)), 2),
            "dense_ms_median": round(float(np.median(dense_ms)), 3),
            "cited_query_ms_median": round(float(np.median(cited_ms)), 2) if cited_ms else None,
            "cited_shards_touched_mean": round(float(np.mean(touched)), 2) if touched else None,
            "load_s": round(load_s, 2), "queries": len(queries)}


def row_for(size: int, docs: int, wall: float, manifest: dict, q: dict, embedder: str) -> dict:
    st = manifest["stats"]
    ann = manifest["ann"]
    return {
        "target": size, "passages": manifest["count"], "documents": docs, "shards": len(manifest["shards"]),
        "embedder": embedder, "build_s": round(wall, 1), "build_passages_per_s": round(manifest["count"] / wall, 1),
        "ingest_passages_per_s": st.get("ingest_passages_per_s"),
        "embed_passages_per_s": st.get("embed_passages_per_s"),
        "ingest_peak_rss_mb": st.get("ingest_peak_rss_mb"),
        "peak_rss_mb": max(v for k, v in st.items() if k.endswith("_peak_rss_mb")),
        "phase_seconds": {k[:-8]: v for k, v in st.items() if k.endswith("_seconds")},
        "phase_peak_rss_mb": {k[:-12]: v for k, v in st.items() if k.endswith("_peak_rss_mb")},
        "index_mb": round(st["index_bytes"] / 2**20, 1),
        "parts_mb": {k[:-6]: round(v / 2**20, 1) for k, v in st.items() if k.endswith("_bytes") and k != "index_bytes"},
        "ann": ann["kind"], "ann_params": ann["params"], "ann_recall_at_10_build_sample": ann["recall_at_10"],
        **q,
    }


def fmt_table(rows: list[dict]) -> str:
    cols = [("passages", "{:,}"), ("embedder", "{}"), ("build_s", "{:.0f}"), ("build_passages_per_s", "{:,.0f}"),
            ("ingest_passages_per_s", "{:,.0f}"), ("embed_passages_per_s", "{:,.0f}"), ("ingest_peak_rss_mb", "{:.0f}"),
            ("peak_rss_mb", "{:.0f}"), ("index_mb", "{:,.0f}"), ("ann", "{}"), ("recall_at_10_claims", "{:.3f}"),
            ("query_ms_median", "{:.1f}"), ("passage_query_ms_median", "{:.1f}"), ("dense_ms_median", "{:.2f}"),
            ("cited_query_ms_median", "{:.1f}")]
    heads = ["passages", "embedder", "build s", "build p/s", "ingest p/s", "embed p/s", "ingest RSS MB",
             "peak RSS MB", "index MB", "ANN", "recall@10", "query ms", "passage q ms", "dense ms", "cited q ms"]
    cells = [[f.format(r[c]) if r.get(c) is not None else "-" for c, f in cols] for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(heads)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(heads, widths, strict=True))]
    lines += ["  ".join(c.rjust(w) for c, w in zip(cell, widths, strict=True)) for cell in cells]
    return "\n".join(lines)


def growth(rows: list[dict]) -> list[str]:
    out = []
    for a, b in zip(rows, rows[1:], strict=False):
        n = b["passages"] / a["passages"]
        parts = [f"size x{n:.2f}", f"build time x{b['build_s'] / a['build_s']:.2f}",
                 f"ingest RSS x{b['ingest_peak_rss_mb'] / a['ingest_peak_rss_mb']:.2f}",
                 f"peak RSS x{b['peak_rss_mb'] / a['peak_rss_mb']:.2f}",
                 f"index size x{b['index_mb'] / a['index_mb']:.2f}",
                 f"query ms x{b['query_ms_median'] / a['query_ms_median']:.2f}",
                 f"dense ms x{b['dense_ms_median'] / a['dense_ms_median']:.2f}"]
        if a.get("cited_query_ms_median") and b.get("cited_query_ms_median"):
            parts.append(f"cited query ms x{b['cited_query_ms_median'] / a['cited_query_ms_median']:.2f}")
        out.append(f"{a['passages']:,} -> {b['passages']:,}: " + ", ".join(parts))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("corpus", type=Path, nargs="?", default=SCIFACT / "corpus.jsonl")
    ap.add_argument("--claims", type=Path, default=None, help="SciFact claims as queries (default claims_dev.jsonl)")
    ap.add_argument("--sizes", default="50k,200k,1M")
    ap.add_argument("--embedder", default="minilm-sentences",
                    help="scaling runs: minilm-sentences (real MiniLM sentence vectors summed per window), hash, or a "
                         "model (embeds every passage)")
    ap.add_argument("--minilm-size", default="smallest", help="size of the real MiniLM build ('0' to skip)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--shard-size", type=int, default=50_000)
    ap.add_argument("--window", type=int, default=2)
    ap.add_argument("--ann", default="auto")
    ap.add_argument("--ann-memory", default="2")
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--work", type=Path, default=Path("/tmp/claimscope-scale"))
    ap.add_argument("--keep", action="store_true", help="keep the built indexes")
    ap.add_argument("--out", type=Path, default=RESULTS / "scale", help="writes OUT.txt and OUT.json")
    ap.add_argument("--build-one", nargs=2, metavar=("CORPUS", "OUT"), help=argparse.SUPPRESS)
    ap.add_argument("--pairs", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--vectors", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.build_one:
        return build_one(args)
    claims_path = args.claims or args.corpus.parent / "claims_dev.jsonl"
    queries = claims(claims_path, args.queries)
    sizes = [parse_size(s) for s in args.sizes.split(",")]
    args.work.mkdir(parents=True, exist_ok=True)
    rows = []
    plan = [(s, args.embedder) for s in sizes]
    minilm = min(sizes) if args.minilm_size == "smallest" else parse_size(args.minilm_size)
    if minilm:
        plan.append((minilm, "bundled:all-MiniLM-L6-v2"))
    header = [f"benchmarks/scale.py  {time.strftime('%Y-%m-%d %H:%M')}  {platform.processor() or platform.machine()}, "
              f"{os.cpu_count()} CPUs; --workers {args.workers}, --shard-size {args.shard_size:,}, "
              f"window {args.window} sentences, embeddings stored float16, ANN {args.ann} "
              f"(budget {args.ann_memory} GiB)",
              f"corpus: {args.corpus} (SciFact abstracts, repeated with shuffled sentences); queries: {len(queries)} "
              f"claims from {claims_path.name}; load average at start {os.getloadavg()[0]:.1f} (the machine is shared)"]
    print("\n".join(header), flush=True)
    vectors = None
    for size, embedder in plan:
        corpus = args.work / f"corpus-{size}.jsonl"
        docs, _, ids, sentences = make_corpus(args.corpus, size, corpus, args.window)
        pairs = None
        if embedder == "minilm-sentences":
            if vectors is None:
                cached = (args.work / "sentences-minilm.rate").exists()
                vectors, rate = sentence_vectors(sentences, args.work, args.workers)
                when = (args.work / "sentences-minilm.rate").read_text().split(" measured ")[-1]
                header.append(f"MiniLM embedded the {len(sentences):,} distinct SciFact sentences at {rate:,.0f} "
                              f"sentences/s ({args.workers} workers, 1 torch thread each; "
                              f"{'cached from ' + when if cached else 'this run'})")
                print(header[-1], flush=True)
            pairs = args.work / f"pairs-{size}.npy"
            np.save(pairs, ids)
        out = args.work / f"index-{size}-{embedder.split(':')[0]}"
        shutil.rmtree(out, ignore_errors=True)
        wall, manifest = build(corpus, out, args, embedder, pairs, vectors)
        q = measure_queries(out, queries)
        label = "MiniLM" if embedder.startswith("bundled") else embedder
        row = row_for(size, docs, wall, manifest, q, label)
        rows.append(row)
        print(json.dumps(row), flush=True)
        if not args.keep:
            shutil.rmtree(out, ignore_errors=True)
        corpus.unlink()
        if pairs is not None:
            pairs.unlink()
    scaling = [r for r in rows if r["embedder"] == args.embedder]
    text = "\n".join(header + ["", fmt_table(rows), "", "growth between sizes (" + args.embedder + " embedder):",
                               *growth(scaling), "",
                               "build p/s = passages / wall time of the whole build (ingest, embed, BM25, ANN, "
                               "manifest); ingest RSS = peak memory while streaming passages into shards; peak RSS = "
                               "largest phase (process + workers); dense ms = ANN search alone; query ms = one open "
                               "claim through search_many (BM25 over every shard + ANN + document-first ranking of the "
                               "candidate papers + their passages); passage q ms = the same ranked by passages alone "
                               "(fusion + passage fetch, no document step); cited q ms "
                               "= the claim restricted to its cited papers; recall@10 = ANN vs exact search with "
                               "the claims as queries. Embedder 'minilm-sentences': each window's vector is the "
                               "normalised sum of the real MiniLM vectors of its sentences (embedded once), so the "
                               "index and queries see real embedding geometry at sizes MiniLM cannot embed here in "
                               "the time; its 'embed p/s' is that summing, not the model. 'hash': the word-hash "
                               "embedder (no model). 'MiniLM': the bundled model embedding every passage, end to "
                               "end through the local engine."])
    print("\n" + text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".txt").write_text(text + "\n")
    args.out.with_suffix(".json").write_text(json.dumps({"header": header, "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
