"""The fast block path (MuPDF's text writer) gives the same blocks as PyMuPDF's extractBLOCKS on the real PDF."""

from __future__ import annotations

from pathlib import Path

import pymupdf
import pytest

from claimscope.retrieve.pdf import _TEXT_FLAGS, _blocks_fast

PDF = Path(__file__).resolve().parents[2] / "examples" / "papers" / "2005.13013v1.pdf"


def test_fast_blocks_match_extract_blocks_on_every_page():
    with pymupdf.open(PDF) as doc:
        checked = 0
        for page in doc:
            tp = page.get_textpage(flags=_TEXT_FLAGS)
            fast = _blocks_fast(tp)
            if fast is None:
                pytest.fail(f"page {page.number + 1}: the fast path declined a plain text page")
            slow = [b for b in tp.extractBLOCKS() if b[6] == 0 and b[4].strip()]
            assert [b[4].rstrip("\n") for b in fast] == [b[4].rstrip("\n") for b in slow], f"page {page.number + 1}"
            for f, s in zip(fast, slow, strict=True):
                assert all(abs(a - b) <= 2.0 for a, b in zip(f[:4], s[:4], strict=True)), (page.number + 1, f, s)
            checked += 1
    assert checked == 11
