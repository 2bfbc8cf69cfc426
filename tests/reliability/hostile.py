"""Generators for hostile inputs, written into tmp_path by the tests (nothing big is committed)."""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path

import pymupdf

from tests.retrieve.conftest import EXAMPLE_PDF, _text_pdf
from tests.retrieve.test_retrieve_online import _bad_pdfs

SCRIPT_TEXT = '<script>alert("pwned")</script> <img src=x onerror=alert(1)> shows a 3.2 point gain on XNLI.'


def zero_page_pdf() -> bytes:
    body = b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\n"
    xref = len(body)
    body += b"xref\n0 3\n0000000000 65535 f \n0000000009 00000 n \n0000000052 00000 n \n"
    body += b"trailer<</Size 3/Root 1 0 R>>\nstartxref\n" + str(xref).encode() + b"\n%%EOF\n"
    return body


def many_pages_pdf(n: int) -> bytes:
    doc = pymupdf.open()
    for i in range(n):
        doc.new_page(width=300, height=200).insert_text((20, 40), f"Page {i + 1} reports a result of {i}.{i % 10}.")
    return doc.tobytes(garbage=1, deflate=True)


def script_pdf() -> bytes:
    doc = pymupdf.open()
    page = doc.new_page()
    page.insert_text((72, 72), "Results", fontsize=14)
    page.insert_textbox(pymupdf.Rect(72, 90, 520, 400), f"Our model {SCRIPT_TEXT} The baseline is weaker.",
                        fontsize=10)
    return doc.tobytes()


def excerpt_pdf(pages: list[int]) -> bytes:
    """Some pages of the real example paper (a small real input for whole runs)."""
    doc = pymupdf.open(EXAMPLE_PDF)
    doc.select(pages)
    return doc.tobytes(garbage=1, deflate=True)


def hostile_pdf(name: str, tmp: Path) -> bytes:
    bad = _bad_pdfs(tmp)
    if name == "corrupt":
        return bad["corrupt"]
    if name == "truncated":
        data = EXAMPLE_PDF.read_bytes()
        return data[: len(data) // 3]
    if name == "encrypted":
        return bad["encrypted"]
    if name == "zero_page":
        return zero_page_pdf()
    if name == "blank_page":
        doc = pymupdf.open()
        doc.new_page()
        return doc.tobytes()
    if name == "image_only":
        return bad["image"]
    if name == "pages_500":
        return many_pages_pdf(500)
    if name == "oversized":
        return _text_pdf(["A normal paper. " * 20] * 30, pages=3) + b"\n" * 200_000
    if name == "not_a_pdf":
        return b"<html><body>Please verify you are a human</body></html>"
    if name == "empty_file":
        return b""
    if name == "html_script":
        return script_pdf()
    raise KeyError(name)


GOOD_ROW = "Intermediate-task training improves zero-shot transfer.,2005.13013v1"


def hostile_claims(name: str, tmp: Path) -> Path:
    """Write the named hostile claims file under tmp and return its path."""
    def put(fname: str, data: bytes) -> Path:
        p = tmp / fname
        p.write_bytes(data)
        return p

    if name == "latin1_csv":
        return put("claims.csv", "claim,cited\nL'étude montre un gain de 5 points,2005.13013v1\n".encode("latin-1"))
    if name == "utf16_json":
        return put("claims.json", json.dumps([{"claim": "A claim.", "cited": "2005.13013v1"}]).encode("utf-16"))
    if name == "binary_garbage":
        return put("claims.json", os.urandom(4096))
    if name == "csv_missing_claim_column":
        return put("claims.csv", b"statement,paper\nSomething.,2005.13013v1\n")
    if name == "csv_empty_rows":
        return put("claims.csv", f"claim,cited\n\n,\n{GOOD_ROW}\n , \n\nA second claim holds.,2005.13013v1\n".encode())
    if name == "csv_only_header":
        return put("claims.csv", b"claim,cited\n")
    if name == "csv_10mb_line":
        return put("claims.csv", b"claim,cited\n" + b"word " * 2_000_000 + b",2005.13013v1\n" + GOOD_ROW.encode())
    if name == "json_10mb_line":
        recs = [{"claim": "x " * 5_000_000, "cited": "2005.13013v1"}, {"claim": "Short claim.", "cited": []}]
        return put("claims.json", json.dumps(recs).encode())
    if name == "json_duplicate_ids":
        recs = [{"id": "c1", "claim": f"Claim number {i}.", "cited": "2005.13013v1"} for i in range(3)]
        return put("claims.json", json.dumps(recs).encode())
    if name == "json_bad_syntax":
        return put("claims.json", b'[{"claim": "unterminated}')
    if name == "json_wrong_shape":
        return put("claims.json", b'{"title": "no claims here", "items": 3}')
    if name == "json_claim_not_object":
        return put("claims.json", b'["just a string", 42]')
    if name == "json_bad_cited":
        return put("claims.json", json.dumps([{"claim": "A claim.", "cited": ["../../etc/passwd"]}]).encode())
    if name == "jsonl_not_object":
        return put("claims.jsonl", b'[1, 2, 3]\n42\n"claim"\n')
    if name == "jsonl_missing_id":
        return put("claims.jsonl", b'{"claim": "no id here"}\n')
    if name == "too_many_claims":
        rows = "".join(f"Claim {i} holds.,2005.13013v1\n" for i in range(30))
        return put("claims.csv", ("claim,cited\n" + rows).encode())
    if name == "nul_bytes_txt":
        return put("report.txt", b"Title\x00\n\x00\x00Claim\tVerified\n\x00\tx\n")
    raise KeyError(name)


def unknown_report(name: str, tmp: Path) -> Path:
    if name == "docx":
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            z.writestr("word/document.xml", "<w:document/>")
        p = tmp / "report.docx"
        p.write_bytes(buf.getvalue())
        return p
    if name == "xlsx":
        p = tmp / "report.xlsx"
        p.write_bytes(b"PK\x03\x04" + os.urandom(200))
        return p
    if name == "pdf_report":
        p = tmp / "report.pdf"
        p.write_bytes(EXAMPLE_PDF.read_bytes())
        return p
    if name == "rtf":
        p = tmp / "report.rtf"
        p.write_bytes(b"{\\rtf1\\ansi Claim\\tab Verified\\par}")
        return p
    if name == "txt_without_table":
        p = tmp / "report.txt"
        p.write_text("A Report\n\nResearch question: does it work?\n\nIt works, we think.\n")
        return p
    if name == "md_empty":
        p = tmp / "report.md"
        p.write_text("\n\n   \n")
        return p
    if name == "directory":
        p = tmp / "report_dir.txt"
        p.mkdir()
        return p
    raise KeyError(name)
