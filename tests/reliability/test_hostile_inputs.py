"""Hostile files and ids: each is refused with one line naming it, or read safely; never a crash or a stray file."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from claimscope.cli import main
from claimscope.retrieve.ids import parse_arxiv_id
from claimscope.retrieve.local import collect_papers
from claimscope.settings import RetrieveSettings
from claimscope.types import PaperRef
from claimscope.verify.claims_io import parse_ref, read_claims

from .checks import assert_one_line, cli_error_line, files_under, typed_or_ok
from .hostile import excerpt_pdf, hostile_claims, hostile_pdf, unknown_report
from .registry import HOSTILE_CLAIMS, HOSTILE_IDS, HOSTILE_PDFS, SYMLINKS, UNKNOWN_REPORTS

PAPER = "2104.07412v1"
# what the reader must do with each PDF: ("gap", words in the reason) or ("paper", check)
PDF_EXPECT: dict[str, tuple[str, str | None]] = {
    "corrupt": ("gap", "not a readable PDF"),
    "truncated": ("either", None),
    "encrypted": ("gap", "encrypted"),
    "zero_page": ("gap", None),
    "blank_page": ("gap", "no text"),
    "image_only": ("gap", "OCR"),
    "pages_500": ("paper", "pages 51-500 not read (max_pages=50)"),
    "oversized": ("gap", "max_bytes=150,000"),
    "not_a_pdf": ("gap", "not a PDF"),
    "empty_file": ("gap", "empty"),
    "html_script": ("paper", "<script>"),
}


@pytest.mark.parametrize("name", HOSTILE_PDFS)
def test_hostile_pdf_becomes_a_gap_or_a_paper(name, tmp_path, probe):
    o = probe("input", f"pdf:{name}")
    folder = tmp_path / "papers"
    folder.mkdir()
    (folder / f"{PAPER}.pdf").write_bytes(hostile_pdf(name, tmp_path))
    (folder / "2005.13013v1.pdf").write_bytes(excerpt_pdf([0]))
    max_bytes = 150_000 if name == "oversized" else 5_000_000
    settings = RetrieveSettings(papers_dir=folder, cache_dir=tmp_path / "cache", max_pages=50, max_bytes=max_bytes)
    refs = [PaperRef(arxiv_id="2104.07412", version=1), PaperRef(arxiv_id="2005.13013", version=1)]
    found, gaps = collect_papers(refs, settings, tmp_path / "run" / "papers")
    keys = [p.ref.key for p, _ in found]
    assert "2005.13013v1" in keys  # the good paper next to it is unharmed
    expect, words = PDF_EXPECT[name]
    gap = next((g for g in gaps if g.item == PAPER), None)
    if gap is not None:
        o.error = gap.reason
        assert_one_line(gap.reason, f"{PAPER}.pdf")
    if expect == "gap":
        assert gap is not None and PAPER not in keys
        assert words is None or words in gap.reason, gap.reason
        assert not (tmp_path / "run" / "papers" / PAPER).exists()  # nothing half-stored
    elif expect == "paper":
        paper, doc = next((p, d) for p, d in found if p.ref.key == PAPER)
        text = "\n".join(pg.text for pg in doc.pages) + "\n".join(paper.notes)
        assert words in text
        if name == "pages_500":
            assert paper.pages == 50
    else:
        assert (gap is None) == (PAPER in keys)


@pytest.mark.parametrize("name", HOSTILE_CLAIMS)
def test_hostile_claims_file(name, tmp_path, probe):
    o = probe("input", f"claims:{name}")
    path = hostile_claims(name, tmp_path)
    status, got = typed_or_ok(lambda: read_claims(path, max_claims=10), o, path.name)
    if name == "csv_empty_rows":
        assert status == "ok" and len(got.claims) == 2
    elif name == "json_duplicate_ids":
        assert status == "ok"
        ids = [c.id for c in got.claims]
        assert len(set(ids)) == 3 and ids[0] == "c1"
    else:
        assert status == "error", f"{name} was accepted ({len(got.claims)} claims)"
    if name == "too_many_claims":
        assert "verify.max_claims" in o.error and "30" in o.error
    if name in ("csv_10mb_line", "json_10mb_line"):
        assert len(o.error) < 300


@pytest.mark.parametrize("name", ["binary_garbage", "csv_missing_claim_column", "json_bad_cited", "jsonl_not_object"])
def test_hostile_claims_through_the_cli_exit_2_with_one_line(name, tmp_path, capsys, probe):
    o = probe("input", f"cli-claims:{name}")
    path = hostile_claims(name, tmp_path)
    rc = main(["-q", "run", str(path), "--out", str(tmp_path / "run"), "--cache", str(tmp_path / "cache")])
    line = cli_error_line(capsys.readouterr().err)
    o.error = line
    assert rc == 2 and path.name in line


@pytest.mark.parametrize("name", UNKNOWN_REPORTS)
def test_unknown_report_format_is_refused_with_its_name(name, tmp_path, probe):
    o = probe("input", f"report:{name}")
    path = unknown_report(name, tmp_path)
    status, _ = typed_or_ok(lambda: read_claims(path), o, path.name)
    assert status == "error"
    if name in ("docx", "xlsx", "rtf", "pdf_report"):
        assert "unknown claims format" in o.error, o.error


@pytest.mark.parametrize("bad", HOSTILE_IDS)
def test_path_like_ids_never_become_paths(bad, tmp_path, capsys, probe):
    o = probe("input", f"id:{bad!r}")
    with pytest.raises(ValueError):
        parse_arxiv_id(bad)
    ref = parse_ref(bad)  # the claims-file reader finds an id inside, or nothing
    if ref is not None:
        assert "/" not in ref.safe_key and ".." not in ref.safe_key
    local = PaperRef(local_name=bad)
    assert "/" not in local.safe_key and "\\" not in local.safe_key and not local.safe_key.startswith(".")
    work = tmp_path / "work"
    work.mkdir()
    before = files_under(tmp_path)
    cwd = os.getcwd()
    os.chdir(work)
    try:
        rc = main(["-q", "retrieve", bad, "--out", str(work / "run"), "--cache", str(work / "cache")])
    finally:
        os.chdir(cwd)
    line = cli_error_line(capsys.readouterr().err)
    o.error = line
    assert rc == 2 and "not an arXiv id" in line
    created = files_under(tmp_path) - before
    outside = [p for p in created if not (p.is_relative_to(work / "run") or p.is_relative_to(work / "cache"))]
    assert outside == [], outside


def test_local_name_ref_stays_inside_the_run_dir(tmp_path, probe):
    o = probe("input", "local_name:../../x")
    folder = tmp_path / "papers"
    folder.mkdir()
    (tmp_path / "x.txt").write_text("A secret outside the papers folder.")
    settings = RetrieveSettings(papers_dir=folder, cache_dir=tmp_path / "cache")
    found, gaps = collect_papers([PaperRef(local_name="../x")], settings, tmp_path / "run" / "papers")
    assert found == [] and len(gaps) == 1
    o.error = gaps[0].reason
    assert all(p.is_relative_to(tmp_path / "run") for p in files_under(tmp_path / "run"))


@pytest.mark.parametrize("kind", SYMLINKS)
def test_symlinks_out_of_the_papers_folder_are_not_followed(kind, tmp_path, probe):
    o = probe("input", f"symlink:{kind}")
    folder = tmp_path / "papers"
    folder.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = outside / "secret.pdf"
    secret.write_bytes(excerpt_pdf([0]))
    link = folder / "2005.13013v1.pdf"
    if kind == "file_outside":
        link.symlink_to(secret)
    elif kind == "dir_outside":
        (outside / "2005.13013v1.pdf").write_bytes(secret.read_bytes())
        (folder / "sub").symlink_to(outside, target_is_directory=True)
    elif kind == "dangling":
        link.symlink_to(tmp_path / "nothing.pdf")
    else:
        real = folder / "real_copy.pdf"
        real.write_bytes(secret.read_bytes())
        link.symlink_to(real)
    settings = RetrieveSettings(papers_dir=folder, cache_dir=tmp_path / "cache")
    found, gaps = collect_papers([PaperRef(arxiv_id="2005.13013", version=1)], settings, tmp_path / "run" / "papers")
    if kind == "inside":
        assert [p.ref.key for p, _ in found] == ["2005.13013v1"]
        return
    assert found == [], f"{kind}: read a file outside the papers folder"
    assert [g.item for g in gaps] == ["2005.13013v1"]
    o.error = gaps[0].reason
    assert_one_line(gaps[0].reason, "2005.13013")
    assert not (tmp_path / "run" / "papers" / "2005.13013v1").exists()


def test_claims_file_that_is_valid_but_cites_only_path_ids(tmp_path, probe):
    o = probe("input", "claims:cited_only_paths")
    path = tmp_path / "claims.json"
    path.write_text(json.dumps([{"claim": "A claim.", "cited": "https://arxiv.org/abs/2005.13013v1/../../../etc"}]))
    status, got = typed_or_ok(lambda: read_claims(path), o, path.name)
    assert status == "ok"
    assert [r.safe_key for r in got.claims[0].cited] == ["2005.13013v1"]
    assert Path(got.claims[0].cited[0].safe_key).name == "2005.13013v1"
