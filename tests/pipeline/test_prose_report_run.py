"""A report without a claims table (a user's own Markdown review) runs end to end against the example papers."""

from __future__ import annotations

import json
from pathlib import Path

from claimscope.cli import main
from claimscope.rundir import read_jsonl
from claimscope.types import Label, Verdict

ROOT = Path(__file__).resolve().parents[2]
REVIEW = """# Intermediate-task training: what we took from the literature

1. Selecting the best intermediate task for each target task gives a 6.1 point improvement over XLM-R Large on
   XTREME (arXiv:2005.13013v1).
2. Intermediate-task training helps the sentence retrieval tasks BUCC and Tatoeba a lot [2005.13013].
- XLM-R was pretrained on 2.5TB of filtered CommonCrawl data in 100 languages (arXiv 1911.02116).
"""


def test_prose_report_claims_are_verified_against_the_papers_they_name(tmp_path):
    report = tmp_path / "review.md"
    report.write_text(REVIEW)
    out = tmp_path / "run"
    assert main(["-q", "run", str(report), "--papers", str(ROOT / "examples" / "papers"), "--out", str(out),
                 "--cache", str(tmp_path / "cache")]) == 0
    claims = [json.loads(line) for line in (out / "claims.jsonl").read_text().splitlines()]
    verdicts = {v.claim_id: v for v in read_jsonl(out / "verdicts.jsonl", Verdict)}
    by_text = {c["text"][:30]: verdicts[c["id"]] for c in claims}
    assert len(by_text) == 3
    six = by_text["Selecting the best intermediat"]
    assert six.checks.version_used[0] == "2005.13013v1" and six.checks.numbers.status == "consistent"
    # the quote opens with the sentence stating 6.1 (an overlapping window opening one sentence earlier does not)
    assert min(six.evidence, key=lambda e: e.rank).quote.startswith("Selecting the best intermediate task model")
    assert any("2005.13013v2" in w and "5.4" in w for w in six.checks.warnings), six.checks.warnings
    # v2 (held in part) states other numbers: its partial note comes with it, and says why it is partial
    assert "2005.13013v2 is held only in part (file is marked PARTIAL in its header)" in six.checks.warnings
    bucc = by_text["Intermediate-task training hel"]
    first = min(bucc.evidence, key=lambda e: e.rank)
    assert bucc.label == Label.SUPPORTED and "BUCC and Tatoeba" in first.quote
    # v1 decides and v2 is not cited nor named otherwise: no note on v2's partial text (before: on every claim)
    assert not any("held only in part" in w for w in bucc.checks.warnings), bucc.checks.warnings
    xlmr = by_text["XLM-R was pretrained on 2.5TB "]  # its paper is not among the example papers
    assert xlmr.label == Label.NOT_ENOUGH_INFO
    md = (out / "report.md").read_text()
    assert "no claims table: 3 claims" in md and "1911.02116" in md
    rows = [line for line in md.splitlines() if line.startswith("| [")]
    assert len(rows) == 3 and all(row.split(" | ")[2] == "—" for row in rows)  # "Report said": one dash, not "— —"
