"""`claimscope verify`: the verify stage alone, on a run directory or on a claims file + papers."""

from __future__ import annotations

import argparse
from pathlib import Path


def _verify(args: argparse.Namespace) -> int:
    from rich.console import Console

    from claimscope.pipeline import Run, attach_full_sentences, refs_to_hold, stage_claims, stage_retrieve, stage_verify
    from claimscope.pipeline_cli import settings_from_args
    from claimscope.types import Label

    settings = settings_from_args(args, args.claims)
    run = Run(args.out, settings)
    claims = stage_claims(run, args.claims) if args.claims else _existing_claims(run)
    papers, passages = stage_retrieve(run, refs_to_hold(claims, settings.retrieve.papers_dir))
    claims = attach_full_sentences(run, claims, papers)
    verdicts = stage_verify(run, claims, papers, passages)
    console = Console(stderr=True)
    counts = {lab: sum(v.label == lab for v in verdicts) for lab in Label}
    console.print(", ".join(f"{n} {lab.value}" for lab, n in counts.items()) + f" → {run.dir.verdicts}")
    return 0


def _existing_claims(run):
    from claimscope.rundir import read_jsonl
    from claimscope.types import Claim

    return read_jsonl(run.dir.claims, Claim)


def register(sub: argparse._SubParsersAction) -> None:
    from claimscope.pipeline_cli import add_settings_args

    p = sub.add_parser(
        "verify", help="give each claim a verdict with evidence (writes verdicts.jsonl)",
        description="Verify claims against the papers they cite: hybrid BM25 + dense evidence search, a "
                    "cross-encoder stance score, a numeric/count check and a version-aware verdict "
                    "(SUPPORTED / CONTRADICTED / NOT_ENOUGH_INFO) with calibrated confidence. Works on an "
                    "existing run directory, or on --claims FILE.")
    p.add_argument("out", type=Path, metavar="RUN_DIR", help="run directory (created if missing)")
    p.add_argument("--claims", type=Path, default=None, help="claims file (default: RUN_DIR/claims.jsonl)")
    add_settings_args(p)
    p.set_defaults(handler=_verify)
