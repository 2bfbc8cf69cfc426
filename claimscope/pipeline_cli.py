"""`claimscope run`: the whole pipeline in one command."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

logger = logging.getLogger(__name__)


def add_settings_args(p: argparse.ArgumentParser) -> None:
    """The settings options shared by the commands that verify."""
    p.add_argument("--preset", default="laptop", help="named settings preset (laptop, fast, thorough)")
    p.add_argument("--papers", type=Path, default=None, metavar="DIR",
                   help="local folder of papers named by arXiv id, e.g. 2005.13013v1.pdf (default for the bundled "
                        "example: examples/papers next to the claims file)")
    p.add_argument("--online", action="store_true", help="fetch missing papers from arXiv (default: offline)")
    p.add_argument("--cache", type=Path, default=None, metavar="DIR", help="paper cache folder ($CLAIMSCOPE_HOME)")
    p.add_argument("--stance-model", default=None,
                   help="'bundled' (default), a Hugging Face NLI model name/path, 'openai:MODEL@URL' or 'lexical'")
    p.add_argument("--embedding-model", default=None, help="sentence-transformers model name or path")
    p.add_argument("--top-k", type=int, default=None, help="evidence passages scored per claim")
    p.add_argument("--no-query-adapter", action="store_true",
                   help="open claims: rank documents with the base claim vector (no query-side adapter)")


def settings_from_args(args: argparse.Namespace, claims_path: Path | None = None):
    from claimscope.settings import load_settings

    overrides: dict[str, object] = {}
    papers = args.papers
    if papers is None and claims_path is not None and (Path(claims_path).parent / "papers").is_dir():
        papers = Path(claims_path).parent / "papers"
    if papers is not None:
        overrides["retrieve__papers_dir"] = Path(papers).resolve()
    if args.online:
        overrides["retrieve__offline"] = False
    if args.cache is not None:
        overrides["retrieve__cache_dir"] = Path(args.cache).resolve()
    if args.stance_model:
        overrides["verify__stance_model"] = args.stance_model
    if args.embedding_model:
        overrides["verify__embedding_model"] = args.embedding_model
    if args.top_k:
        overrides["verify__top_k"] = args.top_k
    if getattr(args, "no_query_adapter", False):
        overrides["verify__query_adapter"] = False
    return load_settings(args.preset, **overrides)


def _run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from claimscope.pipeline import run_pipeline

    console = Console(stderr=True)
    settings = settings_from_args(args, args.claims)
    out = args.out or Path("runs") / Path(args.claims).stem
    if args.formats:
        settings.report.formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    with console.status("claimscope run") as status:
        outputs = run_pipeline(Path(args.claims), Path(out), settings, fmt=args.format,
                               replication=args.replication, progress=lambda m: status.update(m))
    console.print(f"[bold]Report written to {out}[/bold]")
    for path in outputs:
        console.print(f"  {path}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run", help="verify a report's claims against its papers and write the report (all stages)",
        description="Read claims (a machine-written report, JSON, CSV or SciFact JSONL), collect the cited papers, "
                    "verify every claim and write report.md, report.html, claims.csv and verdicts.jsonl into the "
                    "run directory. Offline by default: papers come from --papers (or a papers/ folder beside the "
                    "claims file). Rerunning resumes: finished stages are not redone.")
    p.add_argument("claims", type=Path, help="claims file: report (.txt/.md), .json, .csv or SciFact .jsonl")
    p.add_argument("--out", type=Path, default=None, help="run directory (default runs/<claims file stem>)")
    p.add_argument("--format", choices=["report", "json", "csv", "scifact", "jsonl"], default=None,
                   help="claims file format (default: from the file extension and content; jsonl = claimscope's "
                        "claims.jsonl as `extract` writes it)")
    p.add_argument("--replication", type=Path, default=None, metavar="JSON",
                   help="replication.json to include in the report (from `claimscope replicate`)")
    p.add_argument("--formats", default=None, help="report formats, comma-separated (md,html,csv,json)")
    add_settings_args(p)
    p.set_defaults(handler=_run)
