"""Local files that hold no usable text, or only part of it: a gap naming the file, or a paper that says it is partial;
never a paper that silently counts as read."""

from __future__ import annotations

import shutil

import pytest

from claimscope.errors import PdfUnreadable
from claimscope.retrieve.local import collect_papers
from claimscope.retrieve.pdf import parse_pdf
from claimscope.retrieve.text import parse_text
from claimscope.settings import RetrieveSettings
from claimscope.types import PaperRef

from .conftest import EXAMPLE_PDF


@pytest.mark.parametrize(("name", "content"), [
    ("2104.07412v1.txt", b""),
    ("2104.07412v1.md", b"\n\n   \n<!-- only a comment -->\n"),
    ("2104.07412v1.html", b"<html><head><title>t</title><script>var x = 1;</script></head><body> </body></html>"),
])
def test_a_text_file_without_text_is_an_error_naming_it(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(PdfUnreadable, match="no text") as e:
        parse_text(path)
    assert name in str(e.value)


def test_an_empty_text_paper_is_a_gap_and_the_others_go_on(tmp_path):
    folder = tmp_path / "papers"
    folder.mkdir()
    (folder / "2104.07412v1.txt").write_bytes(b"")
    shutil.copy(EXAMPLE_PDF, folder / "2005.13013v1.pdf")
    settings = RetrieveSettings(papers_dir=folder, cache_dir=tmp_path / "cache")
    refs = [PaperRef(arxiv_id="2104.07412", version=1), PaperRef(arxiv_id="2005.13013", version=1)]
    found, gaps = collect_papers(refs, settings, tmp_path / "run" / "papers")
    assert [p.ref.key for p, _ in found] == ["2005.13013v1"]
    (gap,) = gaps
    assert gap.item == "2104.07412v1" and "2104.07412v1.txt" in gap.reason and "no text" in gap.reason
    assert not (tmp_path / "run" / "papers" / "2104.07412v1").exists()


def _cut_pdf(tmp_path, name: str = "2005.13013v1.pdf"):
    data = EXAMPLE_PDF.read_bytes()
    path = tmp_path / name
    path.write_bytes(data[: len(data) // 2])  # a download cut in half: MuPDF repairs it and finds 11 pages
    return path


def test_a_truncated_pdf_says_it_is_damaged_and_which_pages_lost_their_text(tmp_path, example_doc):
    doc = parse_pdf(_cut_pdf(tmp_path))
    assert len(doc.pages) == 11
    empty = [p.number for p in doc.pages if not p.text.strip()]
    assert empty and [n for n, _ in doc.skipped_pages] == empty
    assert all("damaged" in why for _, why in doc.skipped_pages)
    assert any("damaged" in n for n in doc.meta["notes"]) and doc.meta["incomplete"]
    # the intact file says nothing of the kind
    assert example_doc.skipped_pages == [] and not example_doc.meta.get("notes") and not example_doc.meta.get(
        "incomplete")


def test_a_truncated_local_pdf_is_held_as_partial(tmp_path):
    folder = tmp_path / "papers"
    folder.mkdir()
    _cut_pdf(folder)
    settings = RetrieveSettings(papers_dir=folder, cache_dir=tmp_path / "cache")
    found, gaps = collect_papers([PaperRef(arxiv_id="2005.13013", version=1)], settings, tmp_path / "out")
    assert gaps == []
    ((paper, _),) = found
    assert paper.partial  # verify then never reads a missing statement as a contradiction of the full text
    assert any("damaged" in n for n in paper.notes) and any(n.startswith("page 11 skipped") for n in paper.notes)


def test_a_file_given_as_the_papers_folder_is_named_as_a_file(tmp_path):
    from claimscope.errors import PaperNotFound

    pdf = tmp_path / "2005.13013v1.pdf"
    shutil.copy(EXAMPLE_PDF, pdf)
    settings = RetrieveSettings(papers_dir=pdf, cache_dir=tmp_path / "cache")
    with pytest.raises(PaperNotFound, match="is a file, not a folder") as e:
        collect_papers([PaperRef(arxiv_id="2005.13013")], settings, tmp_path / "out")
    assert str(pdf) in str(e.value) and "does not exist" not in str(e.value)


def test_a_pdf_or_binary_file_named_as_text_is_refused_not_read_as_garbage(tmp_path):
    pdf_as_txt = tmp_path / "2005.13013v3.txt"
    shutil.copy(EXAMPLE_PDF, pdf_as_txt)  # 408 passages of '%PDF-1.5 %���� 344 0 obj << /Linearized ...' before
    with pytest.raises(PdfUnreadable, match="rename it") as e:
        parse_text(pdf_as_txt)
    assert "2005.13013v3.txt" in str(e.value) and ".pdf" in str(e.value)
    zipped = tmp_path / "2005.13013v4.md"
    zipped.write_bytes(b"PK\x03\x04" + bytes(range(256)) * 40)  # a .docx / zip saved as .md
    with pytest.raises(PdfUnreadable, match="not a text file"):
        parse_text(zipped)
    # a real text with a few stray bytes is still read, with a note
    latin = tmp_path / "2005.13013v5.txt"
    latin.write_bytes("Intermediate-task training helps. Caf\u00e9 ".encode("latin-1") * 50)
    doc = parse_text(latin)
    assert "Intermediate-task training helps" in doc.pages[0].text and doc.meta["notes"]
