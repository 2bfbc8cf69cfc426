from __future__ import annotations

import re
from pathlib import Path

import pymupdf
import pytest

from claimscope.errors import EmptyPdf, EncryptedPdf, ImageOnlyPdf, LimitExceeded, PdfUnreadable
from claimscope.retrieve.pdf import order_blocks, parse_pdf

from .conftest import EXAMPLE_PDF


def test_pages_numbered_and_text_on_right_page(example_doc):
    assert [p.number for p in example_doc.pages] == list(range(1, 12))
    assert example_doc.skipped_pages == []
    p1, p2 = example_doc.pages[0].text, example_doc.pages[1].text
    assert "Using a set of 7 intermediate language understanding tasks" in p1
    assert "average improvement of 6.1 points" in p2
    assert "average improvement of 6.1 points" not in p1
    assert "We find:" in p2


def test_hyphenation_rejoined_but_real_hyphens_kept(example_doc):
    text = "\n".join(p.text for p in example_doc.pages)
    p1 = example_doc.pages[0].text
    assert "performance" in p1 and "perfor- mance" not in p1 and "perfor-mance" not in p1
    assert "intermediate training on English" in p1  # "interme-\ndiate" on page 1
    assert "intermediatetask" not in text
    assert "zero-shot" in text.lower() and "zeroshot" not in text.lower()
    # no line-break hyphen left as "xxx- yyy" inside a paragraph except genuine "intermediate- and target-task"
    leftovers = [m for m in re.findall(r"[a-z]+- [a-z]+", text) if m not in {"intermediate- and"}]
    assert leftovers == []


def test_ligatures_and_paragraphs(example_doc):
    text = "\n".join(p.text for p in example_doc.pages)
    assert "\ufb01" not in text and "\ufb02" not in text
    assert "fine-tuning" in text
    # lines inside a paragraph become spaces; paragraphs separated by one blank line
    assert "\n\n\n" not in text
    assert all("\n" not in para for p in example_doc.pages for para in p.text.split("\n\n"))


def test_two_column_reading_order(example_doc):
    p1 = example_doc.pages[0].text
    # left column (abstract, then introduction) is read before the right column
    assert p1.index("Abstract") < p1.index("1 Introduction") < p1.index("In this work, we investigate")
    # a paragraph continued from the bottom of the left column into the right column is one paragraph
    assert "show promise as a way of facilitating the construction" in p1


def test_headings_found_with_offsets(example_doc):
    by_page = {p.number: [h for _, h in p.headings] for p in example_doc.pages}
    assert "Abstract" in by_page[1] and "1 Introduction" in by_page[1]
    assert by_page[2] == ["2 Approach", "2.1 Intermediate Tasks"]
    for page in example_doc.pages:
        for off, head in page.headings:
            assert page.text[off:].startswith(head)


def test_title_from_first_page(example_doc):
    title = "English Intermediate-Task Training Improves Zero-Shot Cross-Lingual Transfer Too"
    assert example_doc.meta["title"] == title
    assert example_doc.meta["page_count"] == 11


def test_order_blocks_single_and_two_columns():
    w = 600.0
    title = (50, 10, 550, 20, "title")
    l1, l2 = (50, 100, 290, 120, "L1"), (50, 130, 290, 150, "L2")
    r1 = (310, 100, 550, 120, "R1")
    caption = (50, 200, 550, 210, "caption")
    l3 = (50, 220, 290, 240, "L3")
    r2 = (310, 220, 550, 240, "R2")
    order = [b[4] for b in order_blocks([r2, caption, r1, l2, title, l3, l1], w)]
    assert order == ["title", "L1", "L2", "R1", "caption", "L3", "R2"]


# ---- generated bad PDFs -------------------------------------------------------------------------------------------


def _one_page_pdf(path: Path, text: str = "Hello world. This is a test page.") -> pymupdf.Document:
    doc = pymupdf.open()
    page = doc.new_page()
    page.insert_text((72, 72), text)
    return doc


def test_corrupt_bytes(tmp_path):
    bad = tmp_path / "bad.pdf"
    bad.write_bytes(b"%PDF-1.5\n" + bytes(range(256)) * 20)
    with pytest.raises(PdfUnreadable) as e:
        parse_pdf(bad)
    assert "bad.pdf" in str(e.value)


def test_truncated_real_pdf_is_an_error_or_partial(tmp_path):
    data = EXAMPLE_PDF.read_bytes()
    cut = tmp_path / "cut.pdf"
    cut.write_bytes(data[: len(data) // 3])
    try:
        doc = parse_pdf(cut)
    except PdfUnreadable as e:
        assert "cut.pdf" in str(e)
    else:  # MuPDF may repair a truncated file; then what it gives must be a subset of the pages
        assert len(doc.pages) <= 11


def test_encrypted(tmp_path):
    doc = _one_page_pdf(tmp_path)
    p = tmp_path / "enc.pdf"
    doc.save(p, encryption=pymupdf.PDF_ENCRYPT_AES_256, user_pw="secret", owner_pw="owner")
    with pytest.raises(EncryptedPdf, match="password"):
        parse_pdf(p)


def test_owner_password_only_is_readable(tmp_path):
    doc = _one_page_pdf(tmp_path)
    p = tmp_path / "owner.pdf"
    doc.save(p, encryption=pymupdf.PDF_ENCRYPT_AES_256, owner_pw="owner", user_pw="")
    parsed = parse_pdf(p)
    assert "Hello world." in parsed.pages[0].text


def test_empty_file_and_no_text(tmp_path):
    empty = tmp_path / "empty.pdf"
    empty.write_bytes(b"")
    with pytest.raises(EmptyPdf):
        parse_pdf(empty)
    blank = tmp_path / "blank.pdf"
    doc = pymupdf.open()
    doc.new_page()
    doc.save(blank)
    with pytest.raises(EmptyPdf, match="no text"):
        parse_pdf(blank)


def test_zero_pages(tmp_path):
    # PyMuPDF refuses to save a zero-page PDF, so write a minimal one by hand
    p = tmp_path / "zero.pdf"
    body = b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\n"
    xref = len(body)
    body += b"xref\n0 3\n0000000000 65535 f \n0000000009 00000 n \n0000000052 00000 n \n"
    body += b"trailer<</Size 3/Root 1 0 R>>\nstartxref\n" + str(xref).encode() + b"\n%%EOF\n"
    p.write_bytes(body)
    with pytest.raises((EmptyPdf, PdfUnreadable)) as e:
        parse_pdf(p)
    assert "zero.pdf" in str(e.value)


def test_image_only(tmp_path):
    pix = pymupdf.Pixmap(pymupdf.csRGB, pymupdf.IRect(0, 0, 64, 64), False)
    pix.set_rect(pix.irect, (200, 30, 30))
    doc = pymupdf.open()
    page = doc.new_page()
    page.insert_image(pymupdf.Rect(72, 72, 300, 300), pixmap=pix)
    p = tmp_path / "scan.pdf"
    doc.save(p)
    with pytest.raises(ImageOnlyPdf, match="OCR"):
        parse_pdf(p)


def test_image_only_page_among_text_pages_is_recorded(tmp_path):
    pix = pymupdf.Pixmap(pymupdf.csRGB, pymupdf.IRect(0, 0, 32, 32), False)
    doc = pymupdf.open()
    doc.new_page().insert_text((72, 72), "A page with text. It has two sentences.")
    doc.new_page().insert_image(pymupdf.Rect(72, 72, 200, 200), pixmap=pix)
    p = tmp_path / "mixed.pdf"
    doc.save(p)
    parsed = parse_pdf(p)
    assert [n for n, _ in parsed.skipped_pages] == [2]
    assert "OCR" in parsed.skipped_pages[0][1]
    assert parsed.pages[0].text.startswith("A page with text.")


def test_limits(tmp_path):
    with pytest.raises(LimitExceeded, match="max_bytes"):
        parse_pdf(EXAMPLE_PDF, max_bytes=1000)
    doc = parse_pdf(EXAMPLE_PDF, max_pages=2)
    assert [p.number for p in doc.pages] == [1, 2]
    assert doc.skipped_pages == [(3, "pages 3-11 not read (max_pages=2)")]
