"""Plain text, Markdown and HTML papers -> ParsedDoc (one page, page 1), same text conventions as the PDF reader."""

from __future__ import annotations

import logging
import re
from html.parser import HTMLParser
from pathlib import Path

from claimscope.errors import EmptyPdf, LimitExceeded, PdfUnreadable
from claimscope.retrieve.textnorm import Dehyphenator, fix_ligatures, heading_text, join_lines
from claimscope.types import ParsedDoc, ParsedPage

logger = logging.getLogger(__name__)

TEXT_SUFFIXES = {".txt": "text", ".text": "text", ".md": "markdown", ".markdown": "markdown", ".html": "html",
                 ".htm": "html"}
_MD_HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.+?)\s*#*\s*$")
_LIST_ITEM = re.compile(r"^\s*(?:[-*+\u2022]|\d{1,3}[.)])\s+")
_HTML_COMMENT = re.compile(r"<!--(.*?)-->", re.DOTALL)
_BLANK = re.compile(r"\n[ \t]*\n")


def _KNOWN_ONLY(line: str) -> bool:  # noqa: N802
    return not any(c.isdigit() for c in line) and heading_text(line) is not None


def _paragraphs(text: str, markdown: bool) -> tuple[str, list[tuple[int, str]]]:
    """Normalise to paragraphs separated by one blank line; lines inside a paragraph joined with spaces."""
    raw_paras: list[tuple[str, bool]] = []  # (text, is_heading)
    dehyph = Dehyphenator([text])
    for block in _BLANK.split(text.replace("\r\n", "\n").replace("\r", "\n")):
        lines: list[str] = []

        def flush(lines: list[str] = lines) -> None:
            para = join_lines(lines, dehyph)
            if para:
                raw_paras.append((para, False))
            lines.clear()

        block_lines = block.split("\n")
        for n, line in enumerate(block_lines):
            m = _MD_HEADING.match(line) if markdown else None
            if m:
                flush()
                raw_paras.append((m.group(1) + " " + m.group(2).strip(), True))
            elif (n == 0 or _KNOWN_ONLY(line)) and heading_text(line) is not None and len(block_lines) > 1:
                # "Abstract" / "1 Introduction" on its own line at the top of a block of text
                flush()
                raw_paras.append((" ".join(line.split()), False))
            elif _LIST_ITEM.match(line):
                flush()
                lines.append(line)
            else:
                lines.append(line)
        flush()

    out: list[str] = []
    headings: list[tuple[int, str]] = []
    offset = 0
    for para, is_heading in raw_paras:
        if out:
            offset += 2
        if is_heading:
            _, _, title = para.partition(" ")
            headings.append((offset, title))
            para = title
        elif heading_text(para) is not None:
            headings.append((offset, para))
        out.append(para)
        offset += len(para)
    return "\n\n".join(out), headings


class _HtmlText(HTMLParser):
    """Collects visible text; block tags start new paragraphs, h1-h6 become markdown-style headings."""

    BLOCK = {"p", "div", "br", "li", "ul", "ol", "tr", "table", "section", "article", "header", "footer", "blockquote",
             "pre", "figure", "figcaption", "dd", "dt", "hr", "main", "nav", "aside", "caption", "td", "th"}
    SKIP = {"script", "style", "noscript", "template", "svg", "math", "head"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skip_depth = 0
        self.title: str | None = None
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self._in_title = True
        if tag in self.SKIP:
            self.skip_depth += 1
        elif tag in self.BLOCK:
            self.parts.append("\n\n")
        elif re.fullmatch(r"h[1-6]", tag):
            self.parts.append("\n\n" + "#" * int(tag[1]) + " ")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        if tag in self.SKIP:
            self.skip_depth = max(0, self.skip_depth - 1)
        elif tag in self.BLOCK or re.fullmatch(r"h[1-6]", tag):
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title = (self.title or "") + data.strip()
        if self.skip_depth:
            return
        self.parts.append(re.sub(r"\s+", " ", data))


def html_to_markdownish(html: str) -> tuple[str, str | None]:
    parser = _HtmlText()
    parser.feed(html)
    parser.close()
    return "".join(parser.parts), parser.title


def parse_text(path: Path, *, max_bytes: int = 50_000_000) -> ParsedDoc:
    """Read a .txt/.md/.html paper into a one-page ParsedDoc; EmptyPdf (a PdfUnreadable) when it holds no text."""
    path = Path(path)
    fmt = TEXT_SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise PdfUnreadable(str(path), f"unsupported text format {path.suffix!r} (use .txt, .md or .html)")
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise LimitExceeded(str(path), f"file is {size:,} bytes, more than max_bytes={max_bytes:,}")
        data = path.read_bytes()
    except OSError as e:
        raise PdfUnreadable(str(path), f"cannot read file: {e.strerror or e}") from e
    if data.lstrip()[:5] == b"%PDF-":
        raise PdfUnreadable(str(path), f"is a PDF named {path.suffix}; rename it .pdf to have it read as one")
    text = data.decode("utf-8", errors="replace")
    if b"\x00" in data[:65536] or text.count("\ufffd") > 0.1 * max(1, len(text)):
        raise PdfUnreadable(str(path), f"not a text file (binary content) though named {path.suffix}")
    notes: list[str] = []
    if "\ufffd" in text:
        notes.append("file is not valid UTF-8; undecodable bytes replaced")
    header = text[:600]
    comments = [c.strip() for c in _HTML_COMMENT.findall(text)]
    title: str | None = None
    if fmt in ("markdown", "html"):
        text = _HTML_COMMENT.sub("", text)
    if fmt == "html":
        text, title = html_to_markdownish(text)
    text = fix_ligatures(text)
    body, headings = _paragraphs(text, markdown=fmt in ("markdown", "html"))
    if not body.strip():  # as for a PDF without text: nothing to check a claim against, so not a paper held
        what = "is empty (0 bytes)" if not data else "has no text"
        raise EmptyPdf(str(path), f"file {what}; no text to check claims against")
    if title is None:
        if fmt == "markdown":
            m = re.search(r"^\s{0,3}#\s+(.+?)\s*#*\s*$", text, re.MULTILINE)
            title = m.group(1) if m else None
        else:
            title = next((p for p in body.split("\n\n")[:5] if 0 < len(p) <= 200 and p[0] not in "[<(#"), None)
    meta = {
        "title": title,
        "format": fmt,
        "page_count": 1,
        "marked_partial": "PARTIAL" in header,
        "header_comment": comments[0][:2000] if comments else None,
        "notes": notes,
        "parser": "claimscope.retrieve.text",
    }
    return ParsedDoc(path=str(path), pages=[ParsedPage(number=1, text=body, headings=headings)], meta=meta)
