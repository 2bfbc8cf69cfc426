"""`claimscope reverify RUN_DIR --papers NEW...`: add new papers (or versions) to a finished run and re-check it."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

logger = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "reverify",
        help="add new papers or paper versions to a finished run and re-check its claims",
        description=(
            "Add new papers to RUN_DIR (local files named by arXiv id, e.g. 2005.13013v2.md, folders of them, or "
            "arXiv ids read from the papers folder, the cache or, with --online, arXiv). Only the new passages are "
            "embedded; claims that can see them are checked again; verdicts.jsonl is rewritten, the replaced files "
            "are kept under history/<time>/, diff.json lists what changed and why, and the report is re-rendered. "
            "Inputs already in the run change nothing. An interrupted reverify leaves the run as it was."
        ),
    )
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="run directory made by `claimscope run`")
    p.add_argument("--papers", nargs="*", default=[], metavar="NEW",
                   help="new papers: files/folders named by arXiv id, or arXiv ids (2005.13013v2, arXiv:…, URLs)")
    p.add_argument("--search", default=None, metavar="QUERY", help="also add the hits of an arXiv search (--online)")
    p.add_argument("--max", type=int, default=10, metavar="N", help="search hits kept (default 10)")
    p.add_argument("--online", action="store_true", help="fetch arXiv ids missing locally from arXiv")
    p.add_argument("--papers-dir", type=Path, default=None, metavar="DIR",
                   help="local folder of papers named by arXiv id to look the ids up in (default: the --papers "
                        "folder the run was made with, from run.json)")
    p.add_argument("--cache", type=Path, default=None, metavar="DIR", help="paper cache folder ($CLAIMSCOPE_HOME)")
    p.add_argument("--all", dest="rescore_all", action="store_true",
                   help="re-score every claim, not only those that can see the new passages")
    p.add_argument("--no-report", dest="render", action="store_false", help="do not re-render the report")
    p.set_defaults(handler=run_reverify)


def run_reverify(args: argparse.Namespace) -> int:
    from rich.console import Console

    from claimscope.errors import ClaimscopeError
    from claimscope.verify.reverify import load_run_settings, reverify

    if not args.papers and not args.search:
        raise ClaimscopeError("reverify", "give new papers with --papers NEW... and/or --search QUERY")
    if args.search and args.max < 1:
        raise ClaimscopeError(f"--max {args.max}", "keep at least 1 search hit")
    overrides: dict[str, object] = {}
    if args.online:
        overrides["retrieve__offline"] = False
    if args.papers_dir is not None:
        if not args.papers_dir.is_dir():
            raise ClaimscopeError(str(args.papers_dir), "--papers-dir: no such folder")
        overrides["retrieve__papers_dir"] = args.papers_dir.resolve()
    if args.cache is not None:
        overrides["retrieve__cache_dir"] = args.cache.resolve()
    settings = load_run_settings(args.run_dir, **overrides)
    console = Console(stderr=True)
    with console.status("claimscope reverify") as status:
        result = reverify(args.run_dir, args.papers, settings=settings, search=args.search, search_max=args.max,
                          rescore_all=args.rescore_all, render=args.render, progress=lambda m: status.update(m))
    for key in result.skipped:
        console.print(f"already in the run, unchanged: {key}")
    for gap in result.gaps:
        console.print(f"{gap.item}: {gap.reason}", style="yellow", markup=False)
    if not result.new_papers:
        console.print("[bold]Nothing new; the run is unchanged.[/bold]")
        return 0 if not result.gaps else 1
    diff = result.diff
    console.print(f"[bold]Added {', '.join(result.new_papers)}[/bold]: {result.embedded} passages embedded, "
                  f"{len(result.rescored)} claims re-checked, {len(diff.changed)} changed "
                  f"(previous files in {args.run_dir / str(result.history)})")
    for ch in diff.changed:
        before = ch.before_label.value if ch.before_label else "new"
        console.print(f"  {ch.claim_id}: {before} {ch.before_confidence or 0:.2f} -> {ch.after_label.value} "
                      f"{ch.after_confidence:.2f}  {ch.reason or ''}", markup=False)
    if diff.papers_bearing_on_no_claim:
        console.print(f"  bearing on no claim: {', '.join(diff.papers_bearing_on_no_claim)}")
    for path in result.reports:
        console.print(f"  {path}")
    return 0
