"""Claims that name no paper are checked against every paper in the papers folder the user gives."""

from __future__ import annotations

from pathlib import Path

from claimscope.cli import main
from claimscope.rundir import read_jsonl
from claimscope.types import Label, Paper, Verdict

ROOT = Path(__file__).resolve().parents[2]


def test_verify_uncited_claims_reads_every_paper_in_the_folder(tmp_path):
    claims = tmp_path / "claims.csv"
    claims.write_text('claim\n"We use the pretrained XLM-R Large model as a starting point for all our experiments."\n')
    out = tmp_path / "run"
    assert main(["-q", "verify", str(out), "--claims", str(claims), "--papers", str(ROOT / "examples" / "papers"),
                 "--cache", str(tmp_path / "cache")]) == 0
    held = {p.ref.key for p in read_jsonl(out / "papers.jsonl", Paper)}
    assert held == {"2005.13013v1", "2005.13013v2", "2509.23657v1"}  # not examples/papers/SOURCES.md (was "SOURCES")
    (verdict,) = read_jsonl(out / "verdicts.jsonl", Verdict)
    assert verdict.label == Label.SUPPORTED and verdict.scope == "open"
    assert verdict.evidence and verdict.evidence[0].paper == "2005.13013v1" and verdict.evidence[0].page >= 1
    assert verdict.checks.warnings[0] == "the claim names no paper; searched every paper held"
