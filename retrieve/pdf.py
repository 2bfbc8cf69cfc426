"""PDF -> ParsedDoc with PyMuPDF: per-page text in reading order (column aware), headings, bad pages skipped."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable
from pathlib import Path

import pymupdf

try:  # the low-level MuPDF bindings PyMuPDF >= 1.24 is built on; absent, every page takes the extractBLOCKS path
    from pymupdf import mupdf as _mupdf
except ImportError:  # pragma: no cover
    _mupdf = None

from claimscope.errors import EmptyPdf, EncryptedPdf, ImageOnlyPdf, LimitExceeded, PdfUnreadable
from claimscope.retrieve.textnorm import Dehyphenator, fix_ligatures, has_ligature, heading_text, join_lines
from claimscope.types import ParsedDoc, ParsedPage

logger = logging.getLogger(__name__)

# Ligatures are kept by MuPDF (its expansion path measured ~1.7x slower) and expanded by `fix_ligatures` once per block.
_TEXT_FLAGS = pymupdf.TEXT_PRESERVE_LIGATURES | pymupdf.TEXT_PRESERVE_WHITESPACE | pymupdf.TEXT_MEDIABOX_CLIP
_JSON_SCALE = 100.0  # MuPDF's JSON writer prints ints: scale to keep 1/100 pt
_SENT_END = re.compile(r"[.!?:;)\]\"\u201d]\s*$")

_BULLETS = ("\u2022", "\u25cf", "\u25aa", "-", "*", "\u2013")
Block = tuple[float, float, float, float, str]


def _blocks_fast(textpage: pymupdf.TextPage) -> list[Block] | None:
    """The page's text blocks (x0, y0, x1, y1, text) from MuPDF's C text writer plus a walk over the block list.

    Same blocks as `extractBLOCKS`, about 10x cheaper (that one computes a box per character). The writer ends each
    line with one newline and each block with another, so blocks are the text split at blank lines. None when the
    split does not match the block list (an empty line, structure blocks); the caller then uses `extractBLOCKS`.
    """
    if _mupdf is None:
        return None
    stext = textpage.this
    boxes: list[tuple[float, float, float, float]] = []
    b = stext.m_internal.first_block
    while b is not None:
        kind = b.type
        if kind == 0:  # FZ_STEXT_BLOCK_TEXT
            r = b.bbox
            boxes.append((r.x0, r.y0, r.x1, r.y1))
        elif kind != 1:  # structure / vector / grid blocks: text may sit below them, let extractBLOCKS decide
            return None
        b = b.next
    buf = _mupdf.fz_new_buffer(8192)
    out = _mupdf.FzOutput(buf)
    _mupdf.fz_print_stext_page_as_text(out, stext)
    out.fz_close_output()
    chunks = buf.fz_buffer_extract().decode("utf-8", errors="replace").split("\n\n")
    if len(chunks) != len(boxes) + 1 or chunks[-1]:
        return None
    return [(*box, text) for box, text in zip(boxes, chunks, strict=False) if text.strip()]


def _page_blocks(textpage: pymupdf.TextPage) -> list[Block]:
    try:
        fast = _blocks_fast(textpage)
    except Exception as e:  # the low-level bindings changed or failed: the public API decides (and may fail the page)
        logger.debug("fast block extraction failed, using extractBLOCKS: %s", e)
        fast = None
    if fast is not None:
        return fast
    return [(b[0], b[1], b[2], b[3], b[4]) for b in textpage.extractBLOCKS() if b[6] == 0 and b[4].strip()]


def _quiet_mupdf() -> None:
    """Stop MuPDF printing to stderr; its messages are collected and logged instead."""
    pymupdf.TOOLS.mupdf_display_errors(False)
    if hasattr(pymupdf.TOOLS, "mupdf_display_warnings"):
        pymupdf.TOOLS.mupdf_display_warnings(False)


def _log_mupdf_messages(path: Path) -> None:
    msgs = pymupdf.TOOLS.mupdf_warnings(reset=True)
    if msgs:
        for line in msgs.splitlines()[:20]:
            logger.debug("mupdf (%s): %s", path.name, line)


def order_blocks(blocks: list[Block], page_width: float) -> list[Block]:
    """Reading order for one- and two-column pages.

    Blocks wider than one column (titles, figure captions, tables across the page) split the page into bands;
    inside a band the left column is read before the right column.
    """
    mid = page_width / 2
    tol = page_width * 0.02
    ordered: list[Block] = []
    band: list[Block] = []

    def flush() -> None:
        left = [b for b in band if b[2] <= mid + tol]
        right = [b for b in band if b[2] > mid + tol]
        ordered.extend(sorted(left, key=lambda b: (b[1], b[0])))
        ordered.extend(sorted(right, key=lambda b: (b[1], b[0])))
        band.clear()

    for b in sorted(blocks, key=lambda b: (b[1], b[0])):
        x0, x1 = b[0], b[2]
        if x0 < mid - tol and x1 > mid + tol:  # spans both columns
            flush()
            ordered.append(b)
        else:
            band.append(b)
    flush()
    return ordered


def _page_text(blocks: list[Block], page_width: float, dehyph: Dehyphenator) -> tuple[str, list[tuple[int, str]]]:
    paragraphs: list[str] = []
    headings: list[tuple[int, str]] = []
    offset = 0
    for b in order_blocks(blocks, page_width):
        para = join_lines(b[4].split("\n"), dehyph)  # ligatures already expanded by parse_pdf
        if not para:
            continue
        head = heading_text(para)
        if head is not None:
            headings.append((offset + (2 if paragraphs else 0), head))
        elif paragraphs and _continues(paragraphs[-1], para):
            # a paragraph continued from the previous column / block: join it into one paragraph
            prev = paragraphs[-1]
            joined = join_lines([prev, para], dehyph)
            paragraphs[-1] = joined
            offset += len(joined) - len(prev)
            continue
        if paragraphs:
            offset += 2
        paragraphs.append(para)
        offset += len(para)
    text = "\n\n".join(paragraphs)
    return text, headings


def _continues(prev: str, para: str) -> bool:
    """`para` carries on the sentence that `prev` left open (a paragraph split across columns)."""
    if _SENT_END.search(prev) or heading_text(prev) is not None or para.startswith(_BULLETS):
        return False
    return para[0].islower() or (len(prev) >= 80 and prev[-1].isalnum() and " " in para)


def _title_from_first_page(textpage: pymupdf.TextPage, page_rect: pymupdf.Rect) -> str | None:
    """The largest-font line(s) in the top third of page 1 (reuses the page's TextPage).

    Reads MuPDF's JSON writer (C, one string) instead of `extractDICT` (a Python dict per span on the whole page);
    a line's size there is that of its first character.
    """
    if _mupdf is None:
        return _title_from_dict(textpage, page_rect)
    buf = _mupdf.fz_new_buffer(32768)
    out = _mupdf.FzOutput(buf)
    _mupdf.fz_print_stext_page_as_json(out, textpage.this, _JSON_SCALE)  # coordinates and sizes printed as ints
    out.fz_close_output()
    top = (page_rect.y0 + page_rect.height / 3) * _JSON_SCALE
    blocks = json.loads(buf.fz_buffer_extract())["blocks"]
    return _largest_font_lines(
        (line["font"]["size"] / _JSON_SCALE, line["text"])
        for block in blocks if block.get("type") == "text" and block["bbox"]["y"] <= top
        for line in block.get("lines", ())
    )


def _title_from_dict(textpage: pymupdf.TextPage, page_rect: pymupdf.Rect) -> str | None:
    top = page_rect.y0 + page_rect.height / 3
    return _largest_font_lines(
        (line["spans"][0]["size"], "".join(s["text"] for s in line["spans"]))
        for block in textpage.extractDICT()["blocks"] if block.get("bbox", (0, 0, 0, top + 1))[1] <= top
        for line in block.get("lines", [])
    )


def _largest_font_lines(lines: Iterable[tuple[float, str]]) -> str | None:
    """The lines (size, text) in the largest font, joined: sizes within 0.5 pt count as the same font."""
    best: tuple[float, list[str]] = (0.0, [])
    for size, raw in lines:
        text = raw.strip()
        if not text:
            continue
        if size > best[0] + 0.5:
            best = (size, [text])
        elif abs(size - best[0]) <= 0.5:
            best[1].append(text)
    title = " ".join(best[1]).strip()
    return fix_ligatures(title) or None


def parse_pdf(path: Path, *, max_pages: int = 300, max_bytes: int = 50_000_000) -> ParsedDoc:
    """Read a PDF into pages of text in reading order.

    Raises PdfUnreadable (corrupt), EncryptedPdf, EmptyPdf (no pages / no text), ImageOnlyPdf (no text layer),
    LimitExceeded (file too large). A page that fails is recorded in `skipped_pages`; the rest are kept.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as e:
        raise PdfUnreadable(str(path), f"cannot read file: {e.strerror or e}") from e
    if size > max_bytes:
        raise LimitExceeded(str(path), f"file is {size:,} bytes, more than max_bytes={max_bytes:,}")
    if size == 0:
        raise EmptyPdf(str(path), "file is empty (0 bytes)")

    _quiet_mupdf()
    try:
        doc = pymupdf.open(path, filetype="pdf")
    except Exception as e:  # pymupdf raises FileDataError / RuntimeError / ValueError for broken files
        _log_mupdf_messages(path)
        raise PdfUnreadable(str(path), f"not a readable PDF ({type(e).__name__}: {str(e)[:120]})") from e

    try:
        if not doc.is_pdf:  # MuPDF sniffs the content and happily opens HTML, XML or images saved as .pdf
            kind = (doc.metadata or {}).get("format") or "another format"
            raise PdfUnreadable(str(path), f"not a PDF (the content is {kind}; a landing page saved as .pdf?)")
        if doc.needs_pass and not doc.authenticate(""):
            raise EncryptedPdf(str(path), "PDF is encrypted and needs a password")
        n = doc.page_count
        if n == 0:
            raise EmptyPdf(str(path), "PDF has zero pages")
        meta_title = (doc.metadata or {}).get("title") or None

        title_guess: str | None = None
        raw: list[tuple[int, list[Block], float, bool]] = []
        skipped: list[tuple[int, str]] = []
        for i in range(min(n, max_pages)):
            try:
                page = doc.load_page(i)
                textpage = page.get_textpage(flags=_TEXT_FLAGS)
                blocks = _page_blocks(textpage)
                if i == 0 and not meta_title and blocks:
                    try:
                        title_guess = _title_from_first_page(textpage, page.rect)
                    except Exception as e:  # a title is a nicety; never fail the document for it
                        logger.debug("%s: no title from page 1: %s", path.name, e)
                has_images = not blocks and bool(page.get_images(full=False))
                raw.append((i + 1, blocks, page.rect.width, has_images))
            except Exception as e:  # one bad page must not sink the document
                logger.warning("%s: page %d unreadable, skipped (%s)", path.name, i + 1, e)
                skipped.append((i + 1, f"unreadable: {type(e).__name__}: {str(e)[:100]}"))
        if n > max_pages:
            skipped.append((max_pages + 1, f"pages {max_pages + 1}-{n} not read (max_pages={max_pages})"))

        if raw and not any(blocks for _, blocks, _, _ in raw):
            if any(img for *_, img in raw):
                raise ImageOnlyPdf(str(path), "no text layer (scanned/image-only pages); OCR would be needed")
            raise EmptyPdf(str(path), "no text on any page")
        if not raw:
            raise PdfUnreadable(str(path), f"none of its {n} pages could be read")

        for _, blocks, _, _ in raw:  # expand ligatures once per block, before the vocabulary and the page text
            for k, b in enumerate(blocks):
                if has_ligature(b[4]):
                    blocks[k] = (b[0], b[1], b[2], b[3], fix_ligatures(b[4]))
        dehyph = Dehyphenator(b[4] for _, blocks, _, _ in raw for b in blocks)
        # MuPDF rebuilds the cross-reference table of a truncated or broken file and opens it; the pages past the
        # damage come back without text, so they are named, and the paper is held as incomplete
        repaired = bool(getattr(doc, "is_repaired", False))
        notes = ["damaged PDF (MuPDF rebuilt its cross-reference table: a truncated or broken file?); "
                 "text may be missing"] if repaired else []
        pages: list[ParsedPage] = []
        for number, blocks, width, has_images in raw:
            if not blocks:
                if has_images:
                    skipped.append((number, "no text layer (image-only page); OCR would be needed"))
                elif repaired:
                    skipped.append((number, "no text: damaged PDF, the page's content was not recovered"))
                pages.append(ParsedPage(number=number, text="", headings=[]))
                continue
            text, headings = _page_text(blocks, width, dehyph)
            pages.append(ParsedPage(number=number, text=text, headings=headings))

        title = meta_title or title_guess
        meta = {
            "title": title,
            "page_count": n,
            "pdf_metadata": {k: v for k, v in (doc.metadata or {}).items() if v},
            "parser": f"pymupdf {pymupdf.__version__}",
        }
        if repaired:
            meta["notes"] = notes
            meta["incomplete"] = any(not p.text for p in pages)
    finally:
        doc.close()
        _log_mupdf_messages(path)
    skipped.sort()
    return ParsedDoc(path=str(path), pages=pages, skipped_pages=skipped, meta=meta)
