"""Markdown report: snapshot of the example run, escaping, StrictUndefined.

Update the snapshots after an intended change with
    UPDATE_SNAPSHOTS=1 .venv/bin/pytest tests/report/test_report_markdown.py
then review `git diff tests/report/snapshots/`.
"""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path

import jinja2
import pytest

from claimscope.report_templates.context import build_context
from claimscope.report_templates.render import markdown_env, md_escape, render_markdown, render_run

SNAPSHOTS = Path(__file__).parent / "snapshots"


def _check_snapshot(name: str, text: str) -> None:
    path = SNAPSHOTS / name
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        pytest.skip(f"snapshot {path} updated")
    assert path.exists(), f"no snapshot {path}; create it with UPDATE_SNAPSHOTS=1"
    expected = path.read_text(encoding="utf-8")
    if text != expected:
        diff = "".join(difflib.unified_diff(expected.splitlines(True), text.splitlines(True), "snapshot", "now", n=1))
        pytest.fail(f"report.md differs from {path} (UPDATE_SNAPSHOTS=1 to accept):\n{diff[:4000]}")


def test_markdown_snapshot(example_run: Path) -> None:
    paths = render_run(example_run, ["md"])
    assert paths == [example_run / "report.md"]
    _check_snapshot("example_report.md", paths[0].read_text(encoding="utf-8"))


def test_markdown_snapshot_with_replication_calibration_diff(example_run_full: Path) -> None:
    paths = render_run(example_run_full, ["md"])
    assert {p.name for p in paths} == {"report.md", "replication.svg", "reliability.svg"}
    _check_snapshot("example_report_full.md", (example_run_full / "report.md").read_text(encoding="utf-8"))


def _claims_table(md: str) -> list[str]:
    lines = md.splitlines()
    start = lines.index("| # | Claim | Report said | Our verdict | Conf. | Best evidence | Numbers | Warnings |")
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append(line)
    return rows


def _cells(row: str) -> list[str]:
    # split on pipes not escaped with a backslash
    return [c.strip() for c in re.split(r"(?<!\\)\|", row)[1:-1]]


def test_markdown_claims_table_stays_intact(example_run: Path) -> None:
    md = render_markdown(build_context(example_run))
    rows = _claims_table(md)
    assert len(rows) == 9
    for row in rows:
        assert len(_cells(row)) == 8, row
    # claim 4 holds a pipe and a newline: escaped, on one line
    assert "TyDiQA shows consistent improvements \\| with many intermediate tasks, whereas XNLI" in rows[3]


def test_markdown_escapes_html_from_claims_and_papers(example_run: Path) -> None:
    md = render_markdown(build_context(example_run))
    assert "<script>" not in md
    assert "\\<script\\>alert(1)\\</script\\>" in md
    assert not re.search(r"(?<!\\)<img", md) and "\\<img src=" in md
    # the only raw HTML is our own anchors and line breaks
    raw_tags = set(re.findall(r"(?<!\\)<(/?[a-zA-Z]+)", md))
    assert raw_tags <= {"a", "/a", "br"}, raw_tags


def test_md_escape_rules() -> None:
    assert md_escape("a | b\nc") == "a \\| b c"
    assert md_escape("[x](http://e.com) *y* `z` _w_") == "\\[x\\](http://e.com) \\*y\\* \\`z\\` \\_w\\_"
    assert md_escape("<b>") == "\\<b\\>"


def test_summary_counts_in_markdown(example_run: Path) -> None:
    md = render_markdown(build_context(example_run))
    assert "marked 9 of 9 claims as verified" in md
    assert "**We find:** 4 ✔ supported, 3 ✘ contradicted, 2 ? not enough information." in md
    assert "differs from the report's** for 5 of 9 claims" in md
    assert "**2310.09917v3** (retrieve)" in md
    assert "quality score" not in md.lower()


def test_summary_of_claims_without_verdicts_of_their_own(example_run: Path) -> None:
    # claims from `claimscope extract` or a plain table carry no as-reported verdict: nothing to compare, say so
    from claimscope.rundir import read_jsonl, write_jsonl
    from claimscope.types import Claim

    claims = read_jsonl(example_run / "claims.jsonl", Claim)
    write_jsonl(example_run / "claims.jsonl", [c.model_copy(update={"as_reported": None}) for c in claims])
    md = render_markdown(build_context(example_run))
    assert "**The input gives no verdicts of its own**" in md
    assert "marked 0 of" not in md and "differs from the report's" not in md
    assert "cited in a different version** from one we read" in md


def test_strict_undefined_fails_loudly_on_missing_field(example_run: Path) -> None:
    ctx = build_context(example_run)
    env = markdown_env()
    with pytest.raises(jinja2.UndefinedError, match="no_such_field"):
        env.from_string("{{ ctx.claims[0].no_such_field }}").render(ctx=ctx)
    # the real template with one variable missing fails instead of rendering blanks
    with pytest.raises(jinja2.UndefinedError, match="'m' is undefined"):
        env.get_template("report.md.j2").render(ctx=ctx, s=ctx.summary, plots={}, plots_dir="p")


def _rendered(md: str) -> str:
    """report.md as a CommonMark + GFM-tables/strikethrough renderer shows it (markdown-it-py, which rich uses)."""
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark").enable(["table", "strikethrough"]).render(md)


def test_markdown_claim_text_renders_as_written(example_run: Path) -> None:
    """Claims are shown literally when the Markdown is rendered: no strikethrough, entity, math or list from their
    characters, and the run name in its code span carries no escaping backslash ('assignee\\_report' was shown)."""
    import html

    from claimscope.rundir import read_jsonl, write_jsonl
    from claimscope.types import Claim

    texts = ["Gains of ~~8.2~~ 6.1 points ~5 % over $x$ and $y$, in Q&amp;A and R&D.",
             "2020. The year XLM-R was published.",
             "- 1.6 points on XNLI.",
             "+ 2 points on PAWS-X."]
    claims = read_jsonl(example_run / "claims.jsonl", Claim)
    for i, t in enumerate(texts):
        claims[i] = claims[i].model_copy(update={"text": t, "truncated": False, "full_text": None})
    write_jsonl(example_run / "claims.jsonl", claims)
    md = render_markdown(build_context(example_run))
    out = _rendered(md)
    assert "<s>" not in out and "<del>" not in out
    assert "\\$x\\$" in md  # GitHub renders $...$ as math
    quotes = re.findall(r"<blockquote>\s*(.*?)\s*</blockquote>", out, re.S)
    for t in texts:
        assert f"<p>{html.escape(t, quote=False)}</p>" in quotes, t  # a paragraph holding the claim, not a list
    cells = [re.sub(r"<[^>]+>", "", c) for c in re.findall(r"<td>(.*?)</td>", out, re.S)]
    for t in texts:
        assert html.escape(t, quote=False) in cells, t
    assert "<code>assignee_report-example</code>" in out
