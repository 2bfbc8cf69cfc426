"""`claimscope index build | search | verify`: corpus-scale evidence indexes."""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from claimscope.verify.corpus.search import ShardedEvidenceIndex

logger = logging.getLogger(__name__)


def _gib(text: str) -> int:
    try:
        gib = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of GiB: {text!r}") from None
    if gib <= 0:
        raise argparse.ArgumentTypeError(f"must be above 0 GiB, got {text}")
    return int(gib * 2**30)


def at_least(low: int) -> Callable[[str], int]:
    """An argparse type: a whole number not below `low`."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value

    return parse


def _build(args: argparse.Namespace) -> int:
    import sys

    from rich.console import Console

    from claimscope.types import EncoderSpec
    from claimscope.verify.corpus.build import build_index
    from claimscope.verify.corpus.engines import get_engine

    console = Console(stderr=True)
    gpu_actors = args.engine == "ray" and bool(args.num_gpus)
    device = args.device or ("cuda" if gpu_actors else "cpu")  # GPU actors run the encoder on their GPU
    encoder = EncoderSpec(model=args.embedder, precision=args.precision, batch_size=args.batch_size,
                          dtype=args.dtype, device=device, threads=args.threads)
    progress = sys.stderr.isatty() or args.progress
    if args.engine == "ray":
        # actors: --ray-actors, else --workers when given, else as many as the cluster's CPUs / GPUs allow
        engine = get_engine("ray", address=args.ray_address, num_cpus=args.num_cpus, num_gpus=args.num_gpus or 0.0,
                            actors=args.actors, workers=args.workers, progress=progress)
    else:
        engine = get_engine("local", workers=args.workers or 1, progress=progress)
    tune = None
    if args.tune_queries is not None:
        from claimscope.verify.claims_io import read_claims

        tune = [c.text for c in read_claims(args.tune_queries).claims]
    manifest = build_index(args.corpus, args.out, engine=engine, encoder=encoder, shard_size=args.shard_size,
                           ann=args.ann, exact_max=args.exact_max, memory_budget=args.ann_memory,
                           window=args.window, workers=args.workers or 1, tune_queries=tune,
                           progress=progress)
    st = manifest.stats
    ann = manifest.ann
    papers, shards = len(manifest.paper_shards), len(manifest.shards)
    console.print(f"[bold]{manifest.count:,} passages[/bold] from {papers:,} paper{'s' * (papers != 1)} in "
                  f"{shards} shard{'s' * (shards != 1)} → {args.out}")
    skipped = int(st.get("skipped_documents", 0))
    if skipped:
        console.print(f"  [yellow]{skipped} file{'s' * (skipped != 1)} skipped (unreadable or no text; named in "
                      "the warnings above)[/yellow]")
    console.print(f"  embedded with {manifest.encoder.model} ({manifest.engine}); dense index "
                  f"{ann.kind if ann else '-'} recall@10 {ann.recall_at_10 if ann else '-'}; "
                  f"{st['index_bytes'] / 2**20:.1f} MiB on disk")
    return 0


def _paper_keys(index: ShardedEvidenceIndex, wanted: list[str]) -> set[str]:
    """The index's paper keys for --paper values: a key as held, or an arXiv id without version (every version
    held). A value matching nothing held is an error naming it."""
    from claimscope.errors import BadSettings
    from claimscope.verify.corpus.verifier import ref_of_key

    held = index.manifest.paper_shards
    out: set[str] = set()
    for key in wanted:
        if key in held:
            out.add(key)
            continue
        versions = {k for k in held if ref_of_key(k).arxiv_id == key and ref_of_key(key).version is None}
        if not versions:
            raise BadSettings(f"--paper {key}", f"not in the index {index.dir} ({len(held):,} papers, e.g. "
                                                f"{', '.join(list(held)[:3])})")
        out |= versions
    return out


def _search(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from claimscope.errors import BadSettings
    from claimscope.verify.corpus.search import ShardedEvidenceIndex

    if not args.query.strip():
        raise BadSettings("query", "empty query; give the words to search for")
    index = ShardedEvidenceIndex(args.index, doc_first=not args.passages, query_adapter=not args.no_query_adapter)
    allowed = _paper_keys(index, args.paper) if args.paper else None
    hits = index.search(args.query, args.k, allowed=allowed)
    if args.json:
        print(json.dumps([{"rank": r, "score": round(h.score, 6), "paper": h.passage.paper, "page": h.passage.page,
                           "passage_id": h.passage.id, "bm25_rank": h.bm25_rank, "dense_rank": h.dense_rank,
                           "doc_rank": h.doc_rank, "doc_score": round(h.doc_score, 6), "text": h.passage.text}
                          for r, h in enumerate(hits, 1)], indent=2))
        return 0
    table = Table(title=f"{args.query!r} in {args.index} ({len(index):,} passages)")
    for col in ("#", "doc", "paper", "page", "score", "bm25", "dense", "passage"):
        table.add_column(col, overflow="fold")
    for r, h in enumerate(hits, 1):
        table.add_row(str(r), str(h.doc_rank or "-"), h.passage.paper, str(h.passage.page), f"{h.score:.4f}",
                      str(h.bm25_rank), str(h.dense_rank), h.passage.text)
    Console().print(table)
    if not hits:
        print("no passages found")
    return 0


def _verify(args: argparse.Namespace) -> int:
    import sys

    from rich.console import Console

    from claimscope.pipeline_cli import settings_from_args
    from claimscope.rundir import write_jsonl
    from claimscope.types import Label
    from claimscope.verify.claims_io import detect_format, read_claims
    from claimscope.verify.corpus.verifier import verify_against_index

    settings = settings_from_args(args)
    fmt = args.format or detect_format(args.claims, "")
    if fmt == "scifact":  # SciFact claims cite corpus doc ids: keep them (as scifact:<doc_id>, the index's paper keys)
        from claimscope.verify.scifact import read_claims as read_scifact_claims

        claims = read_scifact_claims(args.claims)
        if not claims:  # as read_claims says for the other formats
            from claimscope.errors import BadClaimsFile

            raise BadClaimsFile(str(args.claims), "no claims found")
    else:
        claims = read_claims(args.claims, fmt, max_claims=settings.verify.max_claims).claims
    verdicts = verify_against_index(args.index, claims, settings.verify, batch=args.batch,
                                    progress=sys.stderr.isatty())
    write_jsonl(args.out, verdicts)
    counts = {lab: sum(v.label == lab for v in verdicts) for lab in Label}
    Console(stderr=True).print(", ".join(f"{n} {lab.value}" for lab, n in counts.items()) + f" → {args.out}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    from claimscope.pipeline_cli import add_settings_args

    p = sub.add_parser("index", help="corpus-scale evidence indexes: build, search, verify claims against one",
                       description="Index a whole corpus (hundreds of thousands of papers) for evidence search: "
                                   "passages in Parquet shards, embeddings in memory-mapped shards, BM25 per shard "
                                   "and an approximate FAISS index; built on this machine or on a Ray cluster.")
    isub = p.add_subparsers(dest="index_command", metavar="ACTION", required=True)

    b = isub.add_parser("build", help="build (or resume building) a corpus index",
                        description="CORPUS: a SciFact-style corpus.jsonl, a passages JSONL, or a folder of papers "
                                    "(PDF/text/Markdown/HTML). Rerunning after an interruption skips finished shards.")
    b.add_argument("corpus", type=Path, metavar="CORPUS")
    b.add_argument("--out", type=Path, required=True, metavar="INDEX_DIR", help="index folder (created if missing)")
    b.add_argument("--workers", type=at_least(1), default=None,
                   help="encoder processes (local; default 1), or encoder actors (ray) when --ray-actors is not given")
    b.add_argument("--engine", choices=["local", "ray"], default="local", help="where embeddings are computed")
    b.add_argument("--shard-size", type=at_least(1), default=50_000, help="passages per shard (bounds build memory)")
    b.add_argument("--ann", choices=["auto", "flat", "ivf", "hnsw", "ivfpq"], default="auto",
                   help="dense index: auto = exact up to --exact-max passages, then IVF-Flat, IVF-PQ when IVF-Flat "
                        "would exceed --ann-memory")
    b.add_argument("--exact-max", type=at_least(0), default=100_000, help="largest corpus searched exactly (auto)")
    b.add_argument("--ann-memory", type=_gib, default="2", metavar="GIB",
                   help="memory budget of the dense index in GiB (auto)")
    b.add_argument("--tune-queries", type=Path, default=None, metavar="CLAIMS",
                   help="claims file whose claims measure the ANN recall and tune its probes (default: pseudo-queries, "
                        "the first words of sampled passages)")
    b.add_argument("--embedder", default="bundled:all-MiniLM-L6-v2",
                   help="sentence-transformers model name/path, or 'hash' (no model; for scale tests only)")
    b.add_argument("--precision", choices=["auto", "fp32", "bf16"], default="auto", help="encoder inference dtype")
    b.add_argument("--dtype", choices=["float16", "float32"], default="float16", help="stored embedding dtype")
    b.add_argument("--batch-size", type=at_least(1), default=64, help="passages per encoder forward pass")
    b.add_argument("--threads", type=at_least(1), default=1, help="torch threads per encoder (scale with --workers)")
    b.add_argument("--device", default=None,
                   help="encoder device (default cpu; cuda with --ray-gpus-per-actor)")
    b.add_argument("--window", type=at_least(1), default=None,
                   help="sentences per passage (default: 1 for a SciFact corpus, else retrieve.window_sentences)")
    b.add_argument("--ray-address", default=None,
                   help="--engine ray: 'auto' (a cluster started here with `ray start`), HOST:6379 or "
                        "ray://HOST:10001 to join a cluster (default: $RAY_ADDRESS, else start a local Ray)")
    b.add_argument("--ray-num-cpus", "--num-cpus", dest="num_cpus", type=at_least(1), default=None,
                   help="--engine ray: CPUs of the local Ray it starts (default all)")
    b.add_argument("--ray-gpus-per-actor", "--num-gpus", dest="num_gpus", type=float, default=None,
                   help="--engine ray: GPUs per encoder actor (1, or 0.5 for two per GPU); the encoder runs on cuda")
    b.add_argument("--ray-actors", "--actors", dest="actors", type=at_least(1), default=None,
                   help="--engine ray: encoder actors (default: --workers, else as many as the cluster's CPUs at "
                        "--threads each, or its GPUs at --ray-gpus-per-actor each)")
    b.add_argument("--progress", action="store_true", help="show progress bars even when not on a terminal")
    b.set_defaults(handler=_build)

    s = isub.add_parser("search", help="search a corpus index")
    s.add_argument("index", type=Path, metavar="INDEX_DIR")
    s.add_argument("query")
    s.add_argument("-k", type=at_least(1), default=10, help="hits to show")
    s.add_argument("--paper", action="append", default=None, metavar="KEY",
                   help="only passages of this paper key (repeatable), e.g. 2005.13013v2 or scifact:4983")
    s.add_argument("--json", action="store_true", help="print the hits as JSON")
    s.add_argument("--passages", action="store_true",
                   help="open query: rank passages only (no document-first ranking of the candidate papers)")
    s.add_argument("--no-query-adapter", action="store_true",
                   help="open query: rank the candidate papers with the base query vector (no query-side adapter)")
    s.set_defaults(handler=_search)

    v = isub.add_parser("verify", help="verify a claims file against a corpus index (writes verdicts.jsonl)")
    v.add_argument("index", type=Path, metavar="INDEX_DIR")
    v.add_argument("--claims", type=Path, required=True, help="claims file: report, .json, .csv or SciFact .jsonl")
    v.add_argument("--format", choices=["report", "json", "csv", "scifact"], default=None)
    v.add_argument("--out", type=Path, required=True, help="verdicts JSONL to write")
    v.add_argument("--batch", type=at_least(1), default=128, help="claims searched and scored together")
    add_settings_args(v)  # --no-query-adapter: open claims rank the candidate papers with the base claim vector
    v.set_defaults(handler=_verify)
