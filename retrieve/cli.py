"""`claimscope retrieve`: fetch / read papers into a run directory (papers/<key>/, papers.jsonl, passages.jsonl)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

logger = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "retrieve",
        help="fetch or read papers into a run directory",
        description=(
            "Read cited papers into RUN_DIR: papers/<id>v<N>/ (file + meta.json), papers.jsonl, passages.jsonl. "
            "Local folder first, then the cache, then arXiv (with --online). Versions are kept side by side."
        ),
    )
    p.add_argument("ids", nargs="*", metavar="ID",
                   help="arXiv ids or URLs: 2005.13013, 2005.13013v1, arXiv:…, abs URL (none with --papers: every "
                        "paper in the folder)")
    p.add_argument("--out", type=Path, required=True, metavar="RUN_DIR", help="run directory to write into")
    p.add_argument("--papers", type=Path, default=None, metavar="DIR", help="local folder of papers named by arXiv id")
    p.add_argument("--search", default=None, metavar="QUERY", help="also search arXiv for candidate papers (online)")
    p.add_argument("--max", type=int, default=10, metavar="N", help="search hits kept (default 10)")
    p.add_argument("--since", default=None, metavar="DATE", help="search: only papers from YYYY[-MM[-DD]] on")
    p.add_argument("--online", dest="offline", action="store_false", help="allow arXiv requests")
    p.add_argument("--offline", dest="offline", action="store_true", help="never touch the network (default)")
    p.add_argument("--cache", type=Path, default=None, metavar="DIR", help="paper cache folder ($CLAIMSCOPE_HOME)")
    p.set_defaults(handler=run_retrieve, offline=True)


def run_retrieve(args: argparse.Namespace) -> int:
    from claimscope.errors import ClaimscopeError
    from claimscope.retrieve.ids import parse_arxiv_id
    from claimscope.retrieve.local import collect_papers
    from claimscope.retrieve.passages import paper_passages
    from claimscope.rundir import RunDir, read_jsonl, write_json, write_jsonl
    from claimscope.settings import RetrieveSettings
    from claimscope.types import Gap, Paper, Passage

    refs = []
    for raw in args.ids:
        try:
            refs.append(parse_arxiv_id(raw))
        except ValueError as e:
            raise ClaimscopeError(raw, str(e)) from e
    if not refs and not args.search and args.papers is None:
        raise ClaimscopeError("retrieve", "give arXiv ids, --papers DIR (every paper in it) and/or --search QUERY")
    if not refs and not args.search:  # no ids: every paper in the folder, as `run` reads it for uncited claims
        from claimscope.retrieve.local import FORMATS, check_papers_folder, folder_refs, is_folder_note

        check_papers_folder(args.papers)
        refs = folder_refs(args.papers)
        for p in sorted(args.papers.iterdir()):
            if p.is_file() and p.suffix.lower() not in FORMATS and not p.name.startswith("."):
                print(f"not read: {p.name} (a paper is a .pdf, .txt, .md or .html file)")
            elif p.is_file() and p.suffix.lower() in FORMATS and is_folder_note(p):
                print(f"not read: {p.name} (it describes the folder; a paper file is not named README, SOURCES, ...)")
        if not refs:
            raise ClaimscopeError(str(args.papers), "holds no paper file (.pdf, .txt, .md, .html)")

    since = None
    if args.search:  # checked before the run dir is made and before any request
        from claimscope.retrieve.arxiv_source import parse_since

        if args.offline:
            raise ClaimscopeError(f"--search {args.search!r}", "searching arXiv needs --online")
        if args.max < 1:
            raise ClaimscopeError(f"--max {args.max}", "keep at least 1 search hit")
        try:
            since = parse_since(args.since) if args.since else None
        except ValueError as e:
            raise ClaimscopeError(f"--since {args.since}", "not a date: use YYYY, YYYY-MM or YYYY-MM-DD") from e

    overrides: dict[str, object] = {"offline": args.offline}
    if args.papers is not None:
        overrides["papers_dir"] = args.papers.resolve()
    if args.cache is not None:
        overrides["cache_dir"] = args.cache.resolve()
    settings = RetrieveSettings(**overrides)
    run = RunDir(args.out).create()

    if args.search:
        from claimscope.retrieve.arxiv_source import ArxivSource

        hits = ArxivSource(settings).search(args.search, max_results=args.max, since=since)
        write_json(run.root / "search.json", [h.model_dump(mode="json") for h in hits])
        print(f"search: {len(hits)} papers for {args.search!r}")
        for h in hits:
            print(f"  {h.score:.3f}  {h.ref.key}  {h.meta.title}")
        known = {r.key for r in refs}
        refs += [h.ref for h in hits if h.ref.key not in known]

    found, gaps = collect_papers(refs, settings, run.papers)

    papers: dict[str, Paper] = {}
    passages: list[Passage] = []
    if run.papers_index.exists():
        papers = {p.ref.key: p for p in read_jsonl(run.papers_index, Paper)}
    if run.passages.exists():
        passages = read_jsonl(run.passages, Passage)
    new_keys = {p.ref.key for p, _ in found}
    passages = [ps for ps in passages if ps.paper not in new_keys]
    for paper, doc in found:
        papers[paper.ref.key] = paper
        passages += paper_passages(
            paper, doc, window_sentences=settings.window_sentences, stride=settings.window_stride
        )
    by_key: list[Paper] = sorted(papers.values(), key=lambda p: p.ref.key)
    write_jsonl(run.papers_index, by_key)
    write_jsonl(run.passages, passages)
    # the gaps of earlier retrieves into this run dir still hold unless this one found or retried that paper
    gaps_file = run.root / "retrieve_gaps.jsonl"
    retried = new_keys | {r.key for r in refs} | {g.item for g in gaps}
    all_gaps = [g for g in (read_jsonl(gaps_file, Gap) if gaps_file.exists() else []) if g.item not in retried]
    all_gaps += gaps
    if all_gaps:
        write_jsonl(gaps_file, all_gaps)
    else:
        gaps_file.unlink(missing_ok=True)

    for paper, _doc in found:
        flag = " (partial)" if paper.partial else ""
        print(f"{paper.ref.key}: {paper.fmt}, {paper.pages} pages, {paper.source}{flag} -> {paper.path}")
        for note in paper.notes:
            print(f"    note: {note}")
    for g in gaps:
        print(f"missing {g.item}: {g.reason}")
    print(f"{len(found)} paper file(s), {len(passages)} passages in {run.passages}")
    return 0 if found or not refs else 1
