"""claims.csv columns and values, report.json round trip, and the context built from the run dir."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from claimscope.errors import BadRunDir
from claimscope.report_templates.context import ReportContext, build_context, normalize_as_reported
from claimscope.report_templates.render import CSV_COLUMNS, render_run
from claimscope.types import Label


def test_csv_columns_and_rows(example_run: Path) -> None:
    render_run(example_run, ["csv"])
    with (example_run / "claims.csv").open(encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == CSV_COLUMNS
        rows = list(reader)
    assert [r["row"] for r in rows] == [str(i) for i in range(1, 10)]
    assert [r["verdict"] for r in rows].count("CONTRADICTED") == 3
    r5 = rows[4]
    assert r5["truncated"] == "True" and "6.1 points" in r5["full_text"]
    assert r5["as_reported_verdict"] == "✓" and r5["as_reported_confidence"] == "0.33"
    assert r5["changed_vs_reported"] == "True" and r5["full_text_verdict"] == "CONTRADICTED"
    assert r5["best_paper"] == "2005.13013v1" and r5["best_page"] == "2" and r5["numbers_check"] == "mismatch"
    # a newline inside a claim survives as data, the pipe too; HTML is left as text
    assert "improvements | with many intermediate tasks,\nwhereas" in rows[3]["claim"]
    assert "<script>alert(1)</script>" in rows[5]["claim"]


def test_csv_guards_against_formulas(example_run: Path) -> None:
    claims = (example_run / "claims.jsonl").read_text(encoding="utf-8").splitlines()
    first = json.loads(claims[0])
    first["text"] = "=HYPERLINK(\"http://evil.invalid\")"
    claims[0] = json.dumps(first)
    (example_run / "claims.jsonl").write_text("\n".join(claims) + "\n", encoding="utf-8")
    render_run(example_run, ["csv"])
    with (example_run / "claims.csv").open(encoding="utf-8", newline="") as f:
        row = next(csv.DictReader(f))
    assert row["claim"] == "'=HYPERLINK(\"http://evil.invalid\")"


def test_json_is_the_context(example_run: Path) -> None:
    render_run(example_run, ["json"])
    ctx = ReportContext.model_validate_json((example_run / "report.json").read_text(encoding="utf-8"))
    assert len(ctx.claims) == 9 and ctx.summary.counts == {"SUPPORTED": 4, "CONTRADICTED": 3, "NOT_ENOUGH_INFO": 2}
    assert "plots" not in json.loads((example_run / "report.json").read_text(encoding="utf-8"))


def test_context_summary(example_run: Path) -> None:
    ctx = build_context(example_run)
    s = ctx.summary
    assert (s.n_claims, s.as_reported_supported, s.changed, s.comparable, s.truncated) == (9, 9, 5, 9, 8)
    assert s.version_mismatches == 1 and [g.item for g in s.gaps] == ["2310.09917v3"]
    assert s.common_warnings == ["cited 2005.13013v2; only v1 is held in full (v2: abstract only)"]
    v1 = next(p for p in ctx.papers if p.key == "2005.13013v1")
    assert v1.version_mismatch and v1.versions_cited == ["2005.13013v2"] and v1.claims == list(range(1, 10))
    c5 = ctx.claims[4]
    assert c5.best is not None and c5.best.stance == "contradict" and "6.1 points" in c5.best.quote
    assert len(c5.evidence_for) == 1 and len(c5.evidence_against) == 1
    assert ctx.replication is None and ctx.calibration is None and ctx.diff is None


def test_claim_without_verdict_is_listed_as_unchecked(example_run: Path) -> None:
    lines = (example_run / "verdicts.jsonl").read_text(encoding="utf-8").splitlines()
    (example_run / "verdicts.jsonl").write_text("\n".join(lines[:-1]) + "\n", encoding="utf-8")
    ctx = build_context(example_run)
    assert ctx.summary.unchecked_claims == [9] and ctx.claims[8].verdict is None
    assert ctx.summary.comparable == 8
    render_run(example_run)  # every format still renders


def test_broken_optional_input_becomes_a_gap(example_run: Path) -> None:
    (example_run / "replication.json").write_text('{"scale": "huge", "rows": []}', encoding="utf-8")
    ctx = build_context(example_run)
    assert ctx.replication is None
    assert any(g.item == "replication.json" and "ReplicationSummary" in g.reason for g in ctx.summary.gaps)


def test_missing_run_files_raise_one_line_errors(tmp_path: Path, example_run: Path) -> None:
    with pytest.raises(BadRunDir, match="not a directory"):
        build_context(tmp_path / "nope")
    (example_run / "claims.jsonl").unlink()
    with pytest.raises(BadRunDir, match=r"claims\.jsonl: missing"):
        build_context(example_run)


@pytest.mark.parametrize(
    ("given", "want"),
    [("✓", Label.SUPPORTED), ("Verified", Label.SUPPORTED), ("✗", Label.CONTRADICTED),
     ("not-enough-info", Label.NOT_ENOUGH_INFO), ("", None), (None, None), ("maybe", None)],
)
def test_normalize_as_reported(given: str | None, want: Label | None) -> None:
    assert normalize_as_reported(given) == want


def test_render_does_not_import_torch(example_run: Path) -> None:
    code = (
        "import sys; from claimscope.report_templates.render import render_run; "
        f"render_run({str(example_run)!r}); "
        "bad = [m for m in ('torch', 'sentence_transformers', 'transformers', 'faiss') if m in sys.modules]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr


def test_cli_report_rerenders(example_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from claimscope.cli import main

    assert main(["-q", "report", str(example_run), "--format", "md,csv"]) == 0
    out = capsys.readouterr().out.split()
    assert out == [str(example_run / "report.md"), str(example_run / "claims.csv")]
    assert not (example_run / "report.html").exists()
    assert main(["-q", "report", str(example_run / "missing")]) == 2
    with pytest.raises(SystemExit):
        main(["report", str(example_run), "--format", "pdf"])


def test_calibration_bins_read_from_verify_reliability_output(example_run: Path) -> None:
    """verify.calibrate.reliability() writes {'lo','hi','mean_confidence','accuracy','count'} under 'reliability'."""
    (example_run / "calibration.json").write_text(json.dumps({
        "source": "SciFact dev", "ece": 0.07, "brier": 0.4,
        "reliability": [{"lo": 0.6, "hi": 0.7, "mean_confidence": 0.65, "accuracy": 0.5, "count": 12},
                        {"lo": 0.9, "hi": 1.0, "mean_confidence": 0.95, "accuracy": 0.9, "count": 30}],
    }), encoding="utf-8")
    ctx = build_context(example_run)
    assert ctx.calibration is not None and ctx.calibration.n == 42
    paths = render_run(example_run, ["md", "html"])
    assert example_run / "report_plots" / "reliability.svg" in paths
    assert "Measured on SciFact dev; expected calibration error 0.070 over 42 claims." in (
        example_run / "report.md").read_text(encoding="utf-8")
    assert oct((example_run / "report.html").stat().st_mode & 0o777) == "0o644"


def test_neutral_evidence_limited_by_settings(example_run: Path) -> None:
    manifest = json.loads((example_run / "run.json").read_text(encoding="utf-8"))
    manifest["settings"]["report"]["max_evidence_shown"] = 0
    (example_run / "run.json").write_text(json.dumps(manifest), encoding="utf-8")
    ctx = build_context(example_run)
    assert all(c.evidence_neutral == [] for c in ctx.claims)
    assert len(ctx.claims[1].evidence_against) == 2  # for/against are always shown in full


@pytest.mark.parametrize("mark", ["✗", "✘", "no", "false"])
def test_report_mark_compares_alike_from_report_table_and_csv(tmp_path: Path, mark: str) -> None:
    """A claim the input marks ✗ is compared with our verdict whether it came in a report's claims table (read as
    'not verified') or a CSV (kept as '✗'); the report-table one was left out of 'differs for k of n claims that
    both judged' and of the 'only where we differ' filter."""
    from claimscope.verify.claims_io import read_claims

    example = Path(__file__).resolve().parents[2] / "examples" / "assignee_report.txt"
    text = example.read_text(encoding="utf-8")
    report = tmp_path / "report.txt"
    report.write_text(text.replace("✓", mark, 1), encoding="utf-8")
    from_report = read_claims(report).claims[0].as_reported
    table = tmp_path / "claims.csv"
    table.write_text(f"claim,cited,verified,confidence\nXLM-R is used.,2005.13013v1,{mark},0.3\n", encoding="utf-8")
    from_csv = read_claims(table).claims[0].as_reported
    assert from_report is not None and from_csv is not None
    assert normalize_as_reported(from_report.verdict) == normalize_as_reported(from_csv.verdict) == Label.CONTRADICTED


def test_csv_columns_are_documented_in_readme() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    missing = [c for c in CSV_COLUMNS if f"`{c}`" not in readme]
    assert missing == [], f"claims.csv columns not described in README.md: {missing}"


def test_claims_without_a_verdict_are_not_reported_as_checked(example_run: Path) -> None:
    """A run whose verify stage has not run (or skipped a claim): claims.csv said numbers_check 'not_applicable' and
    0 passages for and against, and the reports 'numbers: not applicable', as if the claim had been checked."""
    (example_run / "verdicts.jsonl").unlink()
    render_run(example_run, ["csv", "md"])
    with (example_run / "claims.csv").open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 9
    for r in rows:
        assert r["verdict"] == r["confidence"] == r["numbers_check"] == ""
        assert r["n_evidence_for"] == r["n_evidence_against"] == ""
    md = (example_run / "report.md").read_text(encoding="utf-8")
    assert "not applicable" not in md
    assert "- **Numbers:** not checked" in md
