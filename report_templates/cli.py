"""`claimscope report RUN_DIR [--format md,html,csv,json]`: re-render the report from the run directory alone."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

logger = logging.getLogger(__name__)

_FORMATS = ("md", "html", "csv", "json")


def _formats(value: str) -> list[str]:
    out = [f.strip().lower() for f in value.split(",") if f.strip()]
    bad = [f for f in out if f not in _FORMATS]
    if bad or not out:
        raise argparse.ArgumentTypeError(
            f"unknown format(s) {', '.join(bad) or value!r}; choose from {','.join(_FORMATS)}"
        )
    return out


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "report",
        help="render report.md / report.html / claims.csv / report.json from a run directory",
        description=(
            "Re-render the report of a run from its files alone (run.json, claims.jsonl, papers.jsonl, "
            "verdicts.jsonl, and replication.json / calibration.json / diff.json when present). No model is loaded."
        ),
    )
    p.add_argument("run_dir", metavar="RUN_DIR", type=Path, help="the run directory, e.g. runs/assignee_report")
    p.add_argument(
        "--format",
        dest="formats",
        type=_formats,
        default=list(_FORMATS),
        metavar="FORMATS",
        help="comma-separated subset of md,html,csv,json (default: all)",
    )
    p.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace) -> int:
    from .render import render_run

    for path in render_run(args.run_dir, args.formats):
        print(path)
    return 0
