"""`claimscope extract PAPER... --out claims.jsonl [--top N]`: check-worthy claims from papers."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

logger = logging.getLogger(__name__)


def _extract(args: argparse.Namespace) -> int:
    from claimscope.rundir import write_jsonl
    from claimscope.verify.extract import extract_claims, paper_ref_for

    claims = []
    seen: set[str] = set()
    for path in args.papers:
        ref = paper_ref_for(path)
        for c in extract_claims(path, ref, top_n=args.top):
            if c.id not in seen:
                seen.add(c.id)
                claims.append(c)
        logger.info("%s: %d claims", path.name, len(claims))
    write_jsonl(args.out, claims)
    logger.info("wrote %d claims to %s", len(claims), args.out)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "extract",
        help="find check-worthy claims (whole sentences, with page and section) in papers",
        description="Extract check-worthy claims from papers (PDF/txt/md named by arXiv id, e.g. 2005.13013v1.pdf).",
    )
    p.add_argument("papers", nargs="+", type=Path, metavar="PAPER", help="paper files")
    p.add_argument("--out", type=Path, required=True, help="claims.jsonl to write")
    p.add_argument("--top", type=int, default=30, help="claims kept per paper, most check-worthy first (default 30)")
    p.set_defaults(handler=_extract)
