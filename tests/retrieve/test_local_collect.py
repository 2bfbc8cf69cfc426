from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from claimscope.errors import PaperNotFound
from claimscope.retrieve.local import collect_papers, parse_filename
from claimscope.settings import RetrieveSettings
from claimscope.types import PaperRef

from .conftest import EXAMPLE_MD, EXAMPLE_PDF, EXAMPLES


def test_parse_filename_variants():
    a = parse_filename(Path("2005.13013v1.pdf"))
    assert (a.arxiv_id, a.version, a.fmt, a.partial) == ("2005.13013", 1, "pdf", False)
    b = parse_filename(Path("2005.13013v2_partial.md"))
    assert (b.version, b.fmt, b.partial) == (2, "markdown", True)
    c = parse_filename(Path("2005.13013.txt"))
    assert (c.version, c.fmt) == (None, "text")
    d = parse_filename(Path("hep-th_9901001v1.pdf"))
    assert (d.arxiv_id, d.version) == ("hep-th/9901001", 1)
    for lookalike in ["2005.130131.pdf", "x2005.13013v1.pdf", "2005.13013v1.docx", "2005.13013 v1.pdf", "notes.md"]:
        assert parse_filename(Path(lookalike)) is None


def test_collect_finds_both_versions_and_records_gap(tmp_path):
    settings = RetrieveSettings(papers_dir=EXAMPLES, cache_dir=tmp_path / "cache")
    out = tmp_path / "run" / "papers"
    refs = [PaperRef(arxiv_id="2005.13013", version=2), PaperRef(arxiv_id="2310.09917")]
    results, gaps = collect_papers(refs, settings, out)
    keys = [p.ref.key for p, _ in results]
    assert keys == ["2005.13013v1", "2005.13013v2"]
    v1, v2 = (p for p, _ in results)
    assert v1.fmt == "pdf" and v1.pages == 11 and v1.source == "local"
    assert v1.meta.title.startswith("English Intermediate-Task Training")
    assert any("cited v2" in n for n in v1.notes)
    assert v2.fmt == "markdown" and v2.partial
    assert v1.sha256 != v2.sha256
    assert (out / "2005.13013v1" / "paper.pdf").read_bytes() == EXAMPLE_PDF.read_bytes()
    assert (out / "2005.13013v2" / "paper.md").read_bytes() == EXAMPLE_MD.read_bytes()
    meta = json.loads((out / "2005.13013v1" / "meta.json").read_text())
    assert meta["sha256"] == v1.sha256 and meta["path"] == "papers/2005.13013v1/paper.pdf"
    assert [(g.stage, g.item) for g in gaps] == [("retrieve", "2310.09917")]
    assert "2310.09917" in gaps[0].reason and "offline" in gaps[0].reason


def test_cited_version_missing_is_a_note_not_a_gap(tmp_path):
    folder = tmp_path / "papers"
    folder.mkdir()
    shutil.copy(EXAMPLE_MD, folder / "2005.13013v2_partial.md")
    settings = RetrieveSettings(papers_dir=folder, cache_dir=tmp_path / "cache")
    results, gaps = collect_papers([PaperRef(arxiv_id="2005.13013", version=3)], settings, tmp_path / "out")
    assert gaps == []
    (paper, _), = results
    assert paper.ref.version == 2 and paper.partial
    assert "cited v3; only v2 available locally" in paper.notes


def test_unreadable_pdf_is_a_gap_others_go_on(tmp_path):
    folder = tmp_path / "papers"
    folder.mkdir()
    shutil.copy(EXAMPLE_PDF, folder / "2005.13013v1.pdf")
    (folder / "2104.07412v1.pdf").write_bytes(b"%PDF-1.4 this is not a pdf at all")
    (folder / "2104.074120v1.pdf").write_bytes(b"look-alike name, must be ignored")
    settings = RetrieveSettings(papers_dir=folder, cache_dir=tmp_path / "cache")
    refs = [PaperRef(arxiv_id="2104.07412", version=1), PaperRef(arxiv_id="2005.13013", version=1)]
    results, gaps = collect_papers(refs, settings, tmp_path / "out")
    assert [p.ref.key for p, _ in results] == ["2005.13013v1"]
    assert len(gaps) == 1 and gaps[0].item == "2104.07412v1" and "2104.07412v1.pdf" in gaps[0].reason


def test_missing_folder_raises(tmp_path):
    settings = RetrieveSettings(papers_dir=tmp_path / "nope", cache_dir=tmp_path / "cache")
    with pytest.raises(PaperNotFound, match="nope"):
        collect_papers([PaperRef(arxiv_id="2005.13013")], settings, tmp_path / "out")


def test_recollect_is_idempotent(tmp_path):
    settings = RetrieveSettings(papers_dir=EXAMPLES, cache_dir=tmp_path / "cache")
    refs = [PaperRef(arxiv_id="2005.13013", version=1)]
    first, _ = collect_papers(refs, settings, tmp_path / "out")
    mtime = (tmp_path / "out" / "2005.13013v1" / "paper.pdf").stat().st_mtime_ns
    second, _ = collect_papers(refs, settings, tmp_path / "out")
    assert [p.model_dump() for p, _ in first] == [p.model_dump() for p, _ in second]
    assert (tmp_path / "out" / "2005.13013v1" / "paper.pdf").stat().st_mtime_ns == mtime
